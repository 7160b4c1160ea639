# CampaignModel.pm — an independent model of what the cloud table must hold,
# and seeded random streams of staged changes that feed it.
#
# The replication tests never ask the extension what the cloud should hold:
# they build the changes themselves, apply each one to this model in the
# order it is staged for its key, and compare the whole cloud table with the
# model (every column, as text).  The semantics modelled are README's
# "Ingest" and "Replication to the cloud":
#   - upsert (xtk_ingest_ext insertOrUpdate, or xtk_ingest with _key): an
#     absent key gets a row holding the carried attributes (the others NULL);
#     a present one gets the carried attributes only (the others untouched);
#   - update: the carried attributes of a present key; nothing for an absent
#     one;  delete: the row goes (nothing for an absent key);
#   - keyless insert (xtk_ingest without _key): a new row with the carried
#     attributes and the UUID xtk_ingest returned (the model only inserts
#     keys that are absent at that point of their stream, so no duplicate);
#   - empty values: '' for strings, NULL for the other types.
# _autopk is the cloud's own sequence and is not compared.  _uuid is
# compared where README fixes it (a row created by a keyless insert keeps
# the UUID xtk_ingest returned); a row created by a keyed change must have
# a UUID, unique in the table.
#
# Streams: CampaignModel::Stream->new(seed) is a private xorshift generator
# (the global rand() is shared with the test framework), and
# $model->session_sql($rng, $session, $changes, %opt) writes the SQL of one
# ingest session: collections of mixed keyed changes (the same key several
# times in one collection too), single records, keyless insert collections,
# keyed insert collections, explicit transactions (some rolled back: the
# model then ignores them).  keyed_change() gives one keyed change and the
# closure that applies it, for tests that apply changes later.  Sessions own disjoint key sets, so each key's
# staging order is its session's order and several sessions may ingest at
# once.  run_sessions() runs them concurrently (one psql each) and hands the
# UUIDs the keyless inserts returned to the model.
#
# check_cloud($model, $node, $dbname, $what) compares the cloud table with
# the model and shows the first differences.
#
# Around it: setup_replication() (extension, cloud server, schema registered
# and deployed), $model->stream() (a seeded stream ingested by concurrent
# sessions), wait_caught_up() (staging_status: nothing pending, no error),
# worker_pids() / wait_new_workers() (the replication workers of a local
# server, found by their backend_type).
package CampaignModel;

use strict;
use warnings;
use Exporter 'import';
use IPC::Run;
use JSON::PP;
use Test::More;
use File::Temp qw(tempfile);
use PostgreSQL::Test::Utils;
use CampaignNodes ();

our @EXPORT = qw(model_table_schema check_cloud run_sessions setup_replication wait_caught_up
  worker_pids wait_new_workers);

# The modelled table: a key and attributes of every kind whose text form
# the model can predict (strings with characters COPY and XML escape,
# unbounded text, integers, a boolean).
our @ATTS = (
	[ s1 => 'string' ], [ s2 => 'string' ], [ notes => 'memo' ],
	[ n => 'long' ], [ big => 'int64' ], [ flag => 'boolean' ]);

# $extra: more <attribute .../> elements (a schema evolution).
sub model_table_schema
{
	my ($name, $extra) = @_;
	$name //= 'modelTable';
	$extra //= '';
	return <<"XML";
<srcSchema name="$name" namespace="dem">
  <element name="$name" autopk="true" autouuid="true" autoStg="true">
    <key name="id" internal="true"><keyfield xpath="\@id"/></key>
    <attribute name="id" type="string" length="20"/>
    <attribute name="s1" type="string" length="80"/>
    <attribute name="s2" type="string" length="255"/>
    <attribute name="notes" type="memo"/>
    <attribute name="n" type="long"/>
    <attribute name="big" type="int64"/>
    <attribute name="flag" type="boolean"/>$extra
  </element>
</srcSchema>
XML
}

# ---------------------------------------------------------------- the model

# new(name => 'modelTable'): the staging element is "${name}Stg".
sub new
{
	my ($class, %opt) = @_;
	my $name = $opt{name} // 'modelTable';
	return bless {
		name => $name,
		table => 'dem.' . lc($name),
		atts => [@ATTS],   # [ name, kind ] of the attributes the cloud table has
		rows => {},        # id => { id, column => value or undef, _uuid => \slot }
		changes => 0,      # committed changes applied to the model
		uuid_slots => {},  # tag => [ \slot, ... ] (keyless inserts of one call)
		fresh => {},       # key prefix => next number of its new keyless ids
		tags => 0,
	}, $class;
}

sub rows { return $_[0]{rows}; }
sub changes { return $_[0]{changes}; }
sub table { return $_[0]{table}; }

sub exists_key { return exists $_[0]{rows}{ $_[1] }; }
sub cols { return map { $_->[0] } @{ $_[0]{atts} }; }

# The schema gained an attribute (deployed): NULL in every row.
sub add_attribute
{
	my ($m, $name, $kind) = @_;
	push @{ $m->{atts} }, [ $name, $kind ];
	$_->{$name} = undef for values %{ $m->{rows} };
}

# Expect exactly these rows (e.g. cloud_rows() of a backup, plus what
# happened since to other keys).
sub set_rows { $_[0]{rows} = $_[1]; }

sub upsert
{
	my ($m, $id, $v) = @_;
	my $r = $m->{rows}{$id} //= { id => $id, (map { $_ => undef } $m->cols), _uuid => \(my $any = undef) };
	$r->{$_} = $v->{$_} for keys %$v;
	$m->{changes}++;
}

sub update
{
	my ($m, $id, $v) = @_;
	$m->{changes}++;
	my $r = $m->{rows}{$id} or return;
	$r->{$_} = $v->{$_} for keys %$v;
}

sub delete_key
{
	my ($m, $id) = @_;
	$m->{changes}++;
	delete $m->{rows}{$id};
}

# A keyless insert; returns the slot that receives the UUID xtk_ingest
# returns for it.
sub insert
{
	my ($m, $id, $v) = @_;
	die "model: keyless insert of present key $id" if exists $m->{rows}{$id};
	my $slot;
	$m->{rows}{$id} = { id => $id, (map { $_ => undef } $m->cols), %$v, _uuid => \$slot };
	$m->{changes}++;
	return \$slot;
}

# ---------------------------------------------------------------- values and records

# Text as PostgreSQL prints the value (undef: NULL), from the value sent.
sub expected_text
{
	my ($kind, $sent) = @_;
	return $sent if $kind eq 'string' || $kind eq 'memo';
	return undef if $sent eq '';
	if ($kind eq 'boolean') { return $sent =~ /^(?:1|true)$/ ? 'true' : 'false'; }
	return $sent;
}

my @ALPHABET = (('a' .. 'z'), ('A' .. 'Z'), (0 .. 9), ' ', ' ', "'", '"', '&', '<', '>',
	'\\', "\t", "\n", ',', ';', '|', '%', "\xc3\xa9", "\xc3\xbc", "\xe6\x97\xa5", "\xe6\x9c\xac",
	"\xe2\x9c\x93", "\xf0\x9f\x98\x80", '\\N', '\\t');

sub random_value
{
	my ($rng, $kind) = @_;
	if ($kind eq 'string' || $kind eq 'memo')
	{
		my $len = $rng->int(26);
		$len = 1000 + $rng->int(3000) if $kind eq 'memo' && $rng->int(40) == 0;
		return join('', map { $ALPHABET[ $rng->int(scalar @ALPHABET) ] } 1 .. $len);
	}
	return '' if $rng->int(20) == 0;
	return (qw(true false 1 0))[ $rng->int(4) ] if $kind eq 'boolean';
	if ($kind eq 'long')
	{
		return $rng->int(2) ? $rng->int(1000) : $rng->int(4294967296) - 2147483648;
	}
	# int64: up to +-2^62
	my $v = $rng->int(1 << 30) * (1 << 32) + $rng->int(4294967296);
	return $rng->int(2) ? "-$v" : "$v";
}

# A random non-empty subset of the attributes with their values:
# (sent values for the XML, expected text for the model).
sub random_values
{
	my ($m, $rng) = @_;
	my (%sent, %text);
	while (!%sent)
	{
		for my $a (@{ $m->{atts} })
		{
			next unless $rng->int(100) < 45;
			$sent{ $a->[0] } = random_value($rng, $a->[1]);
			$text{ $a->[0] } = expected_text($a->[1], $sent{ $a->[0] });
		}
	}
	return (\%sent, \%text);
}

sub xml_attr
{
	my ($v) = @_;
	$v =~ s/&/&amp;/g;
	$v =~ s/</&lt;/g;
	$v =~ s/>/&gt;/g;
	$v =~ s/"/&quot;/g;
	$v =~ s/\t/&#9;/g;
	$v =~ s/\n/&#10;/g;
	return $v;
}

sub record
{
	my ($m, $meta, $id, $sent) = @_;
	my $s = "<$m->{name}Stg$meta id=\"" . xml_attr($id) . '"';
	$s .= sprintf(' %s="%s"', $_, xml_attr($sent->{$_})) for sort keys %{ $sent // {} };
	return $s . '/>';
}

sub collection
{
	my ($m, @records) = @_;
	return "<$m->{name}Stg-collection xtkschema=\"dem:$m->{name}Stg\">" . join('', @records)
	  . "</$m->{name}Stg-collection>";
}

# ---------------------------------------------------------------- streams

# A random keyed change of $id for xtk_ingest_ext (upsert, partial update
# or delete): its record, and a closure applying it to the model.
sub keyed_change
{
	my ($m, $rng, $id) = @_;
	my $r = $rng->int(100);
	if ($r < 45)
	{
		my ($sent, $text) = $m->random_values($rng);
		return ($m->record($r < 20 ? ' _key="@id" _operation="insertOrUpdate"' : ' _key="@id"', $id, $sent),
			sub { $m->upsert($id, $text) });
	}
	if ($r < 75)
	{
		my ($sent, $text) = $m->random_values($rng);
		return ($m->record(' _key="@id" _operation="update"', $id, $sent), sub { $m->update($id, $text) });
	}
	return ($m->record(' _key="@id" _operation="delete"', $id), sub { $m->delete_key($id) });
}

# One session's SQL: $changes staged changes over the keys "${prefix}NNNN"
# (NNNN < $nkeys) plus keys of its own keyless inserts.  Keyless insert
# calls are tagged "U<session>.<n>:" so that run_sessions() can hand their
# UUIDs to the model.  Returns the SQL text.
sub session_sql
{
	my ($m, $rng, $session, $prefix, $nkeys, $changes) = @_;
	my @sql;
	my @pool = map { sprintf('%s%04d', $prefix, $_) } 0 .. $nkeys - 1;
	my $done = 0;
	my $func = "campaign.xtk_ingest";
	my $q = sub { return '$cmx$' . $_[0] . '$cmx$'; };

	my $ext_record = sub {
		my ($dry) = @_;
		my ($rec, $apply) = $m->keyed_change($rng, $pool[ $rng->int(scalar @pool) ]);
		$apply->() unless $dry;
		return $rec;
	};

	while ($done < $changes)
	{
		my $kind = $rng->int(100);
		if ($kind < 50)    # a collection of keyed changes
		{
			my $n = 1 + $rng->int(12);
			push @sql, "SELECT $func" . "_ext(" . $q->($m->collection(map { $ext_record->(0) } 1 .. $n)) . ');';
			$done += $n;
		}
		elsif ($kind < 65)    # one record
		{
			my $r = $ext_record->(0);
			$r =~ s{/>$}{ xtkschema="dem:$m->{name}Stg"/>};
			push @sql, "SELECT $func" . "_ext(" . $q->($r) . ');';
			$done++;
		}
		elsif ($kind < 80)    # keyless inserts: new ids, or absent keys of the pool
		{
			my $n = 1 + $rng->int(6);
			my (@recs, @slots);
			for (1 .. $n)
			{
				my $id;
				if ($rng->int(3) == 0)
				{
					my @absent = grep { !$m->exists_key($_) } @pool[ map { $rng->int(scalar @pool) } 1 .. 4 ];
					$id = $absent[0];
				}
				if (!defined $id)
				{
					$id = sprintf('%sn%d', $prefix, $m->{fresh}{$prefix}++);
					push @pool, $id;
				}
				my ($sent, $text) = $m->random_values($rng);
				push @slots, $m->insert($id, $text);
				push @recs, $m->record('', $id, $sent);
			}
			my $tag = "U$session." . $m->{tags}++;
			$m->{uuid_slots}{$tag} = \@slots;
			push @sql, "SELECT '$tag:' || $func(" . $q->($m->collection(@recs)) . ');';
			$done += $n;
		}
		elsif ($kind < 92)    # inserts with a reconciliation key: upserts
		{
			my $n = 1 + $rng->int(6);
			my @recs;
			for (1 .. $n)
			{
				my $id = $pool[ $rng->int(scalar @pool) ];
				my ($sent, $text) = $m->random_values($rng);
				$m->upsert($id, $text);
				push @recs, $m->record(' _key="@id"', $id, $sent);
			}
			push @sql, "SELECT $func(" . $q->($m->collection(@recs)) . ") = '';";
			$done += $n;
		}
		else    # a transaction of several calls, one in four rolled back
		{
			my $rollback = $rng->int(4) == 0;
			my $calls = 2 + $rng->int(3);
			push @sql, 'BEGIN;';
			for (1 .. $calls)
			{
				my $n = 1 + $rng->int(5);
				push @sql, "SELECT $func" . "_ext(" . $q->($m->collection(map { $ext_record->($rollback) } 1 .. $n)) . ');';
				$done += $n unless $rollback;
			}
			push @sql, $rollback ? 'ROLLBACK;' : 'COMMIT;';
		}
	}
	return join("\n", @sql) . "\n";
}

# The UUIDs xtk_ingest returned (psql output lines "U<s>.<n>:uuid,uuid").
sub take_uuids
{
	my ($m, $output) = @_;
	for my $line (split /\n/, $output)
	{
		next unless $line =~ /^(U\d+\.\d+):(.*)$/;
		my ($tag, $list) = ($1, $2);
		my $slots = delete $m->{uuid_slots}{$tag} or die "model: unknown tag $tag";
		my @uuids = split /,/, $list;
		die "model: $tag returned " . scalar(@uuids) . " UUIDs for " . scalar(@$slots) . ' inserts'
		  unless @uuids == @$slots;
		${ $slots->[$_] } = $uuids[$_] for 0 .. $#uuids;
	}
}

# Run the sessions' SQL texts at once, one psql each (ON_ERROR_STOP), in
# database $dbname of $node; returns true when all succeeded (diagnostics
# otherwise) and hands the returned UUIDs to the model.
sub run_sessions
{
	my ($m, $node, $dbname, @texts) = @_;
	return $m->finish_sessions($m->start_sessions($node, $dbname, @texts));
}

# run_sessions() in two halves: start the psql sessions, then wait for them.
sub start_sessions
{
	my ($m, $node, $dbname, @texts) = @_;
	my @runs;
	for my $text (@texts)
	{
		my ($fh, $file) = tempfile('sessionXXXX', DIR => PostgreSQL::Test::Utils::tempdir(), UNLINK => 1);
		print $fh $text;
		close $fh;
		my ($out, $err) = ('', '');
		local $ENV{PGCLIENTENCODING} = 'UTF8';
		my $h = IPC::Run::start(
			[ 'psql', '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr($dbname), '-f', $file ],
			'<', \undef, '>', \$out, '2>', \$err);
		push @runs, [ $h, \$out, \$err ];
	}
	return \@runs;
}

sub finish_sessions
{
	my ($m, $runs) = @_;
	my @runs = @$runs;
	my $ok = 1;
	for my $r (@runs)
	{
		$r->[0]->finish;
		if ($r->[0]->result != 0 || ${ $r->[2] } ne '')
		{
			diag('ingest session failed: ' . ${ $r->[2] });
			$ok = 0;
		}
		$m->take_uuids(${ $r->[1] });
	}
	return $ok;
}

# ---------------------------------------------------------------- comparison

my $UUID_RE = qr/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

sub show
{
	my ($r) = @_;
	return '(absent)' unless $r;
	return JSON::PP->new->canonical->encode(
		{ map { $_ => (ref $r->{$_} ? ${ $r->{$_} } // '(any uuid)' : $r->{$_}) } keys %$r });
}

# The cloud table's rows as the model holds them (e.g. to expect what a
# backup of the cloud held).
sub cloud_rows
{
	my ($m, $node, $dbname) = @_;
	my %rows = %{ $m->fetch_cloud($node, $dbname) };
	for my $r (values %rows)
	{
		my $uuid = $r->{_uuid};
		$r->{_uuid} = \$uuid;
	}
	return \%rows;
}

# id => { column => text } of the cloud table (every column but _autopk).
sub fetch_cloud
{
	my ($m, $node, $dbname) = @_;
	my $json = JSON::PP->new;    # bytes in, bytes out: values compare as sent
	local $ENV{PGCLIENTENCODING} = 'UTF8';
	my $out = $node->safe_psql($dbname,
		"SELECT json_build_object(" . join(', ', map { "'$_', $_\::text" } '_uuid', 'id', $m->cols) . ") FROM $m->{table}");
	my %got;
	for my $line (split /\n/, $out)
	{
		my $r = $json->decode($line);
		my $id = $r->{id};
		$id .= ' (again)' while exists $got{$id};    # shows as unexpected
		$got{$id} = $r;
	}
	return \%got;
}

# Compare the whole cloud table (every column but _autopk, as text) with
# the model; with only => qr/.../, the rows whose id matches.
sub check_cloud
{
	my ($m, $node, $dbname, $what, %opt) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my ($schema, $table) = split /\./, $m->{table};
	my @cols = split /\n/, $node->safe_psql($dbname, qq{
SELECT column_name FROM information_schema.columns
 WHERE table_schema = '$schema' AND table_name = '$table' AND column_name <> '_autopk'
 ORDER BY column_name});
	my @want = sort('_uuid', 'id', $m->cols);
	if ("@cols" ne "@want")
	{
		return fail("$what: cloud table columns are (@cols), expected (@want)");
	}
	my %got = %{ $m->fetch_cloud($node, $dbname) };
	my %exp = %{ $m->{rows} };
	if ($opt{only})
	{
		delete @got{ grep { !/$opt{only}/ } keys %got };
		delete @exp{ grep { !/$opt{only}/ } keys %exp };
		$what .= " (ids matching $opt{only})";
	}
	my @diffs;
	my %uuids;
	for my $id (sort keys %{ { %got, %exp } })
	{
		my ($g, $e) = ($got{$id}, $exp{$id});
		if (!$g || !$e)
		{
			push @diffs, "id $id: expected " . show($e) . "\n  got " . show($g);
			next;
		}
		my @bad = grep { ($g->{$_} // "\0NULL") ne ($e->{$_} // "\0NULL") } 'id', $m->cols;
		my $uuid = ${ $e->{_uuid} };
		push @bad, '_uuid'
		  if !defined $g->{_uuid} || $g->{_uuid} !~ $UUID_RE || (defined $uuid && $g->{_uuid} ne $uuid);
		push @bad, '_uuid (not unique)' if defined $g->{_uuid} && $uuids{ $g->{_uuid} }++;
		push @diffs, "id $id: columns @bad differ: expected " . show($e) . "\n  got " . show($g) if @bad;
	}
	my $n = scalar keys %exp;
	return 1 if ok(!@diffs, "$what: cloud table $m->{table} equals the model ($n rows, every column)");
	diag(scalar(@diffs) . " rows differ (cloud has " . scalar(keys %got) . " rows, model $n):\n"
		  . join("\n", @diffs[ 0 .. ($#diffs < 14 ? $#diffs : 14) ]));
	return 0;
}

# ---------------------------------------------------------------- around the model

# Database $dbname of $local replicates schema $xml into database $cloud_db
# of $cloud (postgres_fdw server ffda).
sub setup_replication
{
	my ($local, $dbname, $cloud, $cloud_db, $xml) = @_;
	my ($host, $port) = ($cloud->host, $cloud->port);
	$local->safe_psql($dbname, qq{
CREATE EXTENSION campaign CASCADE;
CREATE SERVER ffda FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '$host', port '$port', dbname '$cloud_db');
CREATE USER MAPPING FOR PUBLIC SERVER ffda;
});
	my $schema = $local->safe_psql($dbname, "SELECT campaign.register_schema(\$x\$$xml\$x\$)");
	$local->safe_psql($dbname, "SELECT campaign.deploy('$schema')");
	return $schema;
}

# A seeded stream of about $o{changes} changes, ingested by $sessions
# concurrent sessions in database $dbname of $node, session s owning the
# keys "${prefix}sNNNN" (NNNN < $nkeys) and its keyless inserts' new ids.
sub stream
{
	my ($m, $node, $dbname, %o) = @_;
	return $m->finish_sessions($m->start_stream($node, $dbname, %o));
}

# stream() in two halves: start_stream(), then finish_sessions().
sub start_stream
{
	my ($m, $node, $dbname, %o) = @_;
	my $sessions = $o{sessions} // 4;
	my @texts = map {
		$m->session_sql(CampaignModel::Stream->new($o{seed} * 1000 + $_), $_, "$o{prefix}$_",
			$o{nkeys} // 300, int($o{changes} / $sessions))
	} 1 .. $sessions;
	return $m->start_sessions($node, $dbname, @texts);
}

# Nothing pending and no change in error for $schema (staging_status).
sub wait_caught_up
{
	my ($node, $dbname, $schema, $timeout) = @_;
	return CampaignNodes::wait_for_in($node, $dbname,
		"SELECT pending || '|' || errors FROM campaign.staging_status WHERE schema_name = '$schema'",
		'0|0', $timeout // 300);
}

my $WORKERS = "backend_type LIKE 'campaign replication%'";

sub worker_pids
{
	my ($node) = @_;
	my ($rc, $out) = $node->psql('postgres', "SELECT pid FROM pg_stat_activity WHERE $WORKERS");
	return $rc == 0 ? grep { /^\d+$/ } split /\n/, $out : ();
}

# Replication workers none of which is in @old (after a crash restart).
sub wait_new_workers
{
	my ($node, $timeout, @old) = @_;
	my %old = map { $_ => 1 } @old;
	my $deadline = time() + ($timeout // 120);
	while (time() < $deadline)
	{
		my @pids = worker_pids($node);
		return @pids if @pids && !grep { $old{$_} } @pids;
		select(undef, undef, undef, 0.1);
	}
	return ();
}

# ---------------------------------------------------------------- the generator

package CampaignModel::Stream;

# xorshift64*-like generator on 32-bit halves, exact in Perl's integers.
sub new
{
	my ($class, $seed) = @_;
	my $self = bless { x => ($seed * 2654435761 + 1) & 0xffffffff || 1 }, $class;
	$self->int(2) for 1 .. 10;
	return $self;
}

sub next32
{
	my ($self) = @_;
	my $x = $self->{x};
	$x ^= ($x << 13) & 0xffffffff;
	$x ^= $x >> 17;
	$x ^= ($x << 5) & 0xffffffff;
	return $self->{x} = $x;
}

# 0 .. $n-1 (n up to 2^32)
sub int
{
	my ($self, $n) = @_;
	return int($self->next32 / 4294967296 * $n);
}

1;
