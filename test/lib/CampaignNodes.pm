# CampaignNodes.pm — the two clusters of the replication TAP tests.
#
# start_cloud(%opt):  a plain PostgreSQL, the cloud database.
# start_local($extra_conf, %opt):  a PostgreSQL with campaign preloaded (its
#   worker serves database postgres), plus the test's own settings.
#   %opt: name (the node's name, 'cloud' / 'local' by default) and initdb
#   (extra initdb arguments, e.g. [ '-E', 'UTF8', '--locale=C' ]);
#   allows_streaming => 1 lets pg_basebackup copy the node (and, for a
#   local node, a streaming standby follow it).
# Both run in UTC with C messages, so times and logs compare the same way.
# sample_table_schema():  the source schema dem:sampleTable (a key, three
#   attributes) that the replication tests stage and replicate.
# as_role($node, $role, $sql):  safe_psql in database postgres as $role.
# wait_for($node, $sql, $expected, $timeout, $quiet):  poll a query until it
#   returns $expected; false (with a diagnostic unless $quiet) after
#   $timeout seconds ($CampaignNodes::default_wait when not given).
# wait_for_in($node, $dbname, ...):  the same in another database.
package CampaignNodes;

use strict;
use warnings;
use Exporter 'import';
use PostgreSQL::Test::Cluster;
use Test::More;
use Time::HiRes qw(time usleep);

our @EXPORT = qw(start_cloud start_local sample_table_schema as_role wait_for wait_for_in);
our $default_wait = 60;

my $common = qq{
timezone = 'UTC'
lc_messages = 'C'
};

sub start_cloud
{
	my (%opt) = @_;
	my $cloud = PostgreSQL::Test::Cluster->new($opt{name} // 'cloud');
	$cloud->init(extra => $opt{initdb} // [], allows_streaming => $opt{allows_streaming} // 0);
	$cloud->append_conf('postgresql.conf', $common);
	$cloud->start;
	return $cloud;
}

sub start_local
{
	my ($extra_conf, %opt) = @_;
	my $local = PostgreSQL::Test::Cluster->new($opt{name} // 'local');
	$local->init(extra => $opt{initdb} // [], allows_streaming => $opt{allows_streaming} // 0);
	$local->append_conf('postgresql.conf', $common . qq{
shared_preload_libraries = 'campaign'
max_worker_processes = 16
} . ($extra_conf // ''));
	$local->start;
	return $local;
}

sub sample_table_schema
{
	return <<'XML';
<srcSchema name="sampleTable" namespace="dem">
  <element name="sampleTable" autopk="true" autouuid="true" autoStg="true">
    <key name="id" internal="true"><keyfield xpath="@id"/></key>
    <attribute name="id" type="string" length="20"/>
    <attribute name="testcol1" type="string" length="255"/>
    <attribute name="testcol2" type="string" length="255"/>
    <attribute name="score" type="long"/>
  </element>
</srcSchema>
XML
}

sub as_role
{
	my ($node, $role, $sql) = @_;
	return $node->safe_psql('postgres', $sql, extra_params => [ '-U', $role ]);
}

sub wait_for
{
	my ($node, @rest) = @_;
	return wait_for_in($node, 'postgres', @rest);
}

sub wait_for_in
{
	my ($node, $dbname, $sql, $expected, $timeout, $quiet) = @_;
	$timeout //= $default_wait;
	my $deadline = time() + $timeout;
	my ($out, $err) = ('', '');
	while (time() < $deadline)
	{
		my $rc;
		($rc, $out, $err) = $node->psql($dbname, $sql);
		return 1 if $rc == 0 && $out eq $expected;
		usleep(50_000);
	}
	diag("wait_for timed out after ${timeout}s on ${\$node->name} ($dbname): $sql\n"
		  . "expected: $expected\nlast output: $out\nlast stderr: $err")
	  unless $quiet;
	return 0;
}

1;
