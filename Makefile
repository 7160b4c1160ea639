# campaign: PGXS build of the extension, plus the two quick-start commands.
#
#   make demo   install what is missing, build, run the end-to-end demo
#   make test   install what is missing, build, install, run pg_regress + TAP
#   make valgrind-check   the pg_regress suite against a server under valgrind
#   make fuzz   libFuzzer + AddressSanitizer on the record and schema parsers
#   make deb    the Debian package postgresql-15-campaign (dpkg-buildpackage)
#
# make installcheck runs pg_regress in a temporary instance configured by
# test/campaign.conf, unless an existing server is named: PGHOST or PGPORT
# set (in the environment or on the command line) or USE_EXISTING=1 runs it
# against that server instead, as PGXS users expect; USE_EXISTING=0 forces
# the temporary instance.  The TAP tests always start their own clusters.

PG_CONFIG ?= pg_config

MODULE_big = campaign
OBJS = $(patsubst %.c,%.o,$(wildcard src/*.c))
EXTENSION = campaign
DATA = $(wildcard campaign--*.sql)
# The extension's version, for the server info Logon returns (soap.c).
CAMPAIGN_VERSION := $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" $(dir $(firstword $(MAKEFILE_LIST)))campaign.control)
PG_CPPFLAGS = -DCAMPAIGN_VERSION=\"$(CAMPAIGN_VERSION)\" -I$(srcdir)/src -I$(shell $(PG_CONFIG) --includedir) $(shell xml2-config --cflags)
SHLIB_LINK = $(shell xml2-config --libs) -lpq -lmicrohttpd

REGRESS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
ifneq ($(PGHOST)$(PGPORT),)
USE_EXISTING ?= 1
endif
ifeq ($(USE_EXISTING),1)
REGRESS_OPTS =
else
REGRESS_OPTS = --temp-instance=$(CURDIR)/tmp_check_regress --temp-config=$(srcdir)/test/campaign.conf
endif
TAP_TESTS = 1
PROVE_TESTS = test/t/*.pl
EXTRA_CLEAN = tmp_check_regress tmp_check results regression.diffs regression.out log

PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
ifneq ($(PGXS),)
include $(PGXS)
endif

# PGXS tracks no header dependencies: every object depends on every header.
$(OBJS): $(wildcard src/*.h)

# The pg_regress suite against a server under valgrind memcheck.
valgrind-check:
	bash scripts/install-deps.sh valgrind
	bash scripts/valgrind-check.sh

# libFuzzer on the record and schema parsers, FUZZ_SECONDS (60) per target.
fuzz:
	bash scripts/install-deps.sh fuzz
	bash scripts/fuzz.sh

# The Debian package postgresql-15-campaign, built with pg_buildext by
# dpkg-buildpackage in this tree; the .deb lands in the parent directory.
deb:
	bash scripts/install-deps.sh package
	dpkg-buildpackage -us -uc -b

.PHONY: demo test deps valgrind-check fuzz deb
deps:
	bash scripts/install-deps.sh

demo: deps
	bash scripts/demo.sh

test:
	bash scripts/install-deps.sh fuzz package
	bash scripts/test.sh
