# CampaignNodes.pm — the two clusters of the replication TAP tests.
#
# start_cloud():  a plain PostgreSQL, the cloud database.
# start_local($extra_conf):  a PostgreSQL with campaign preloaded (its worker
#   serves database postgres), plus the test's own settings.
# Both run in UTC with C messages, so times and logs compare the same way.
package CampaignNodes;

use strict;
use warnings;
use Exporter 'import';
use PostgreSQL::Test::Cluster;

our @EXPORT = qw(start_cloud start_local);

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

1;
