# CampaignNodes.pm — the two clusters of the replication TAP tests.
#
# start_cloud():  a plain PostgreSQL, the cloud database.
# start_local($extra_conf):  a PostgreSQL with campaign preloaded (its worker
#   serves database postgres), plus the test's own settings.
# Both run in UTC with C messages, so times and logs compare the same way.
# wait_for($node, $sql, $expected, $timeout, $quiet):  poll a query until it
#   returns $expected; false (with a diagnostic unless $quiet) after
#   $timeout seconds ($CampaignNodes::default_wait when not given).
package CampaignNodes;

use strict;
use warnings;
use Exporter 'import';
use PostgreSQL::Test::Cluster;
use Test::More;
use Time::HiRes qw(time usleep);

our @EXPORT = qw(start_cloud start_local wait_for);
our $default_wait = 60;

my $common = qq{
timezone = 'UTC'
lc_messages = 'C'
};

sub start_cloud
{
	my $cloud = PostgreSQL::Test::Cluster->new('cloud');
	$cloud->init;
	$cloud->append_conf('postgresql.conf', $common);
	$cloud->start;
	return $cloud;
}

sub start_local
{
	my ($extra_conf) = @_;
	my $local = PostgreSQL::Test::Cluster->new('local');
	$local->init;
	$local->append_conf('postgresql.conf', $common . qq{
shared_preload_libraries = 'campaign'
max_worker_processes = 16
} . ($extra_conf // ''));
	$local->start;
	return $local;
}

sub wait_for
{
	my ($node, $sql, $expected, $timeout, $quiet) = @_;
	$timeout //= $default_wait;
	my $deadline = time() + $timeout;
	my ($out, $err) = ('', '');
	while (time() < $deadline)
	{
		my $rc;
		($rc, $out, $err) = $node->psql('postgres', $sql);
		return 1 if $rc == 0 && $out eq $expected;
		usleep(50_000);
	}
	diag("wait_for timed out after ${timeout}s on ${\$node->name}: $sql\n"
		  . "expected: $expected\nlast output: $out\nlast stderr: $err")
	  unless $quiet;
	return 0;
}

1;
