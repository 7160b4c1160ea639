# `make installcheck` against an existing server (PGXS users' habit): with
# PGHOST/PGPORT given, pg_regress runs the whole sql/ suite against that
# server instead of a temporary instance.  The server is one in use, not a
# fresh one: the extension is already installed in its database postgres,
# where the worker runs, and the cluster-wide roles exist.  The instance
# selection itself (PGHOST, PGPORT, USE_EXISTING) is checked with make -n.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use FindBin;
use lib "$FindBin::RealBin/../lib";
use CampaignNodes;
use SourceTree;

my $pg_config = $ENV{PG_CONFIG} // 'pg_config';

# make in the copy, with nothing inherited from the make that runs this test
# (its MAKEFLAGS carry REGRESS= and TAP_TESTS=) nor from the TAP
# environment's PGHOST/PGPORT.
sub run_make
{
	my ($dir, @args) = @_;
	local %ENV = %ENV;
	delete @ENV{qw(MAKEFLAGS MFLAGS MAKELEVEL PGHOST PGPORT USE_EXISTING)};
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'make', '-C', $dir, "PG_CONFIG=$pg_config", @args ],
		'>', \$out, '2>', \$err);
	return ($? >> 8, $out . $err);
}

my $tree = copy_source_tree(PostgreSQL::Test::Utils::tempdir() . '/tree');

# Which instance each form selects.
my (undef, $plan) = run_make($tree, '-n', 'installcheck', 'TAP_TESTS=');
like($plan, qr/--temp-instance=/, 'by default: the temporary instance');
(undef, $plan) = run_make($tree, '-n', 'installcheck', 'TAP_TESTS=', 'PGPORT=5999');
unlike($plan, qr/--temp-instance=/, 'PGPORT given: the existing server');
(undef, $plan) = run_make($tree, '-n', 'installcheck', 'TAP_TESTS=', 'PGHOST=/tmp');
unlike($plan, qr/--temp-instance=/, 'PGHOST given: the existing server');
(undef, $plan) = run_make($tree, '-n', 'installcheck', 'TAP_TESTS=', 'USE_EXISTING=1');
unlike($plan, qr/--temp-instance=/, 'USE_EXISTING=1: the existing server');
(undef, $plan) = run_make($tree, '-n', 'installcheck', 'TAP_TESTS=', 'PGPORT=5999', 'USE_EXISTING=0');
like($plan, qr/--temp-instance=/, 'USE_EXISTING=0 overrides PGPORT');

# A server in use: campaign preloaded and installed in database postgres.
my $node = start_local();
$node->safe_psql('postgres', 'CREATE EXTENSION campaign CASCADE');
wait_for($node,
	"SELECT count(*) = current_setting('campaign.max_workers')::int FROM pg_stat_activity WHERE backend_type = 'campaign replication worker'",
	't');

my @suite = glob(source_root() . '/sql/*.sql');
my ($rc, $out) = run_make($tree, 'installcheck', 'TAP_TESTS=',
	'PGHOST=' . $node->host, 'PGPORT=' . $node->port);
is($rc, 0, 'make installcheck PGHOST=... PGPORT=... succeeds')
  or diag($out . (-e "$tree/regression.diffs" ? slurp_file("$tree/regression.diffs") : ''));
like($out, qr/All ${\scalar @suite} tests passed/, 'every pg_regress file passed');
ok(!-e "$tree/tmp_check_regress", 'no temporary instance was made');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_database WHERE datname = 'contrib_regression'"),
	'1', 'the suite ran in the existing server');
is($node->safe_psql('postgres',
		"SELECT extversion FROM pg_extension WHERE extname = 'campaign'"),
	$node->safe_psql('contrib_regression',
		"SELECT extversion FROM pg_extension WHERE extname = 'campaign'"),
	'the database postgres kept its extension');

$node->stop;
done_testing();
