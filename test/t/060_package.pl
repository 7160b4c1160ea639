# Release metadata and the Debian package.
#
# 1. scripts/check-meta.py: META.json is valid against the PGXN Meta Spec
#    1.0.0 and agrees with campaign.control and debian/changelog; a META.json
#    that disagrees is refused.
# 2. `dpkg-buildpackage -us -uc -b` in a clean copy of the tree (no object
#    of an earlier build) produces postgresql-15-campaign_<version>_<arch>.deb.
#    Its contents: campaign.so, campaign.control and exactly the
#    campaign--*.sql scripts of the tree, byte for byte; its Depends name
#    postgresql-15 and the package of every library campaign.so links; apt
#    can install it here (simulated).
# 3. A server runs the packaged files, unpacked into a scratch root (dpkg-deb
#    -x): shared_preload_libraries names the packaged campaign.so and
#    Debian's extension_destdir points at the root; CREATE EXTENSION gives
#    the control file's version, the worker maps the packaged module, and
#    ingest works.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use File::Copy;
use File::Path qw(make_path);
use File::Compare;
use File::Basename qw(dirname);
use FindBin;
use lib "$FindBin::RealBin/../lib";
use CampaignNodes;
use SourceTree;

my $root = source_root();
my $tmp = PostgreSQL::Test::Utils::tempdir();

sub run_cmd
{
	my ($cmd, %opt) = @_;
	local %ENV = %ENV;
	delete @ENV{qw(MAKEFLAGS MFLAGS MAKELEVEL)};
	$ENV{$_} = $opt{env}{$_} for keys %{ $opt{env} // {} };
	my ($out, $err) = ('', '');
	my @init = $opt{dir} ? (init => sub { chdir $opt{dir} or die "chdir $opt{dir}: $!" }) : ();
	IPC::Run::run($cmd, '>', \$out, '2>', \$err, @init, IPC::Run::timeout(900));
	return ($? >> 8, $out, $err);
}

my ($version) = slurp_file("$root/campaign.control") =~ /^default_version\s*=\s*'([^']+)'/m;
ok($version, "campaign.control's default_version is $version");

# ---------------------------------------------------------------- metadata

my ($rc, $out, $err) = run_cmd([ '/usr/bin/python3', "$root/scripts/check-meta.py", $root ]);
is($rc, 0, 'check-meta.py accepts the tree') or diag($out . $err);
like($out, qr/^check-meta: ok/m, 'META.json valid and consistent');

# A META.json one release behind, without a license: refused, both said.
my $bad = "$tmp/bad-meta";
make_path("$bad/debian", "$bad/test");
copy("$root/$_", "$bad/$_") or die "copy $_: $!"
  for qw(campaign.control campaign--1.0.sql README.md debian/changelog);
IPC::Run::run([ 'cp', '-r', "$root/test/pgxn", "$bad/test/" ]) or die 'cp pgxn';
my $meta = slurp_file("$root/META.json");
$meta =~ s/"version": "[^"]*"/"version": "1.0.0"/g or die 'no version in META.json';
$meta =~ s/\s*"license": "[^"]*",//g or die 'no license in META.json';
open(my $fh, '>', "$bad/META.json") or die $!;
print $fh $meta;
close $fh;
($rc, $out, $err) = run_cmd([ '/usr/bin/python3', "$root/scripts/check-meta.py", $bad ]);
isnt($rc, 0, 'check-meta.py refuses a META.json that disagrees');
like($out, qr/'license' is a required property/, 'the missing license is named');
like($out, qr/version '1\.0\.0', campaign\.control's default_version '\Q$version\E'/,
	'the stale version is named');

# ---------------------------------------------------------------- package

my $src = copy_source_tree("$tmp/build/src");
($rc, $out, $err) = run_cmd([ 'dpkg-buildpackage', '-us', '-uc', '-b' ],
	env => { MAKEFLAGS => '-j2' }, dir => $src);
is($rc, 0, 'dpkg-buildpackage -us -uc -b succeeds in a clean copy')
  or diag(substr($out . $err, -6000));
my (undef, $arch) = run_cmd([ 'dpkg', '--print-architecture' ]);
chomp $arch;
my $deb = "$tmp/build/postgresql-15-campaign_${version}_$arch.deb";
ok(-f $deb, "it produced postgresql-15-campaign_${version}_$arch.deb");

($rc, $out, $err) = run_cmd([ 'dpkg-deb', '-c', $deb ]);
is($rc, 0, 'dpkg-deb -c reads it') or diag($err);
my %files = map { (split ' ', $_)[5] => 1 } split /\n/, $out;
ok($files{'./usr/lib/postgresql/15/lib/campaign.so'}, 'it holds campaign.so');
ok($files{'./usr/share/postgresql/15/extension/campaign.control'}, 'it holds campaign.control');
my @scripts = sort map { s{.*/}{}r } glob("$root/campaign--*.sql");
my @packaged = sort map { m{^\./usr/share/postgresql/15/extension/(campaign--.*\.sql)$} ? $1 : () }
  keys %files;
ok(scalar @scripts >= 2, 'the tree has the release scripts (' . join(', ', @scripts) . ')');
is_deeply(\@packaged, \@scripts, 'it holds exactly the campaign--*.sql scripts of the tree');

my $unpacked = "$tmp/root";
($rc, $out, $err) = run_cmd([ 'dpkg-deb', '-x', $deb, $unpacked ]);
is($rc, 0, 'dpkg-deb -x unpacks it') or diag($err);
for my $f ('campaign.control', @scripts)
{
	is(compare("$unpacked/usr/share/postgresql/15/extension/$f", "$root/$f"), 0,
		"packaged $f is the tree's");
}

# Depends: the server, and the package of every library campaign.so links.
my (undef, $depends) = run_cmd([ 'dpkg-deb', '-f', $deb, 'Depends' ]);
my %depends = map { /^\s*([^\s(]+)/ ? ($1 => 1) : () } split /[,|]/, $depends;
ok($depends{'postgresql-15'}, "Depends names postgresql-15 ($depends)");
my $so = "$unpacked/usr/lib/postgresql/15/lib/campaign.so";
(undef, $out) = run_cmd([ 'readelf', '-d', $so ]);
my @needed = $out =~ /\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g;
ok(scalar @needed, 'campaign.so links ' . join(', ', @needed));
(undef, $out) = run_cmd([ 'ldd', $so ]);
my %path = $out =~ /^\s*(\S+) => (\/\S+)/mg;
for my $lib (@needed)
{
	my $owner = '';
	# ldd may give /lib/... for a file dpkg knows as /usr/lib/... (merged /usr)
	for my $file (grep { defined } $path{$lib}, ($path{$lib} // '') =~ s{^/lib/}{/usr/lib/}r)
	{
		my ($q_rc, $q_out) = run_cmd([ 'dpkg-query', '-S', $file ]);
		($owner) = $q_out =~ /^([^:\s]+)/ if $q_rc == 0;
		last if $owner;
	}
	ok($owner && $depends{$owner}, "$lib comes from " . ($owner || '?') . ', which Depends names');
}
like($depends, qr/\blibxml2\b/, 'Depends names libxml2');
like($depends, qr/\blibpq5\b/, 'Depends names libpq5');

($rc, $out, $err) = run_cmd([ 'apt-get', 'install', '-s', $deb ]);
is($rc, 0, 'apt-get could install it here (simulated)') or diag($out . $err);
like($out, qr/^Inst postgresql-15-campaign /m, 'the simulation installs the package');

# ---------------------------------------------------------------- a server on it

# extension_destdir prefixes the server's own directories: the packaged
# files go where this server's sharedir and pkglibdir are (the Debian paths
# for Debian's server, another prefix for a private build of it).
my $pg_config = $ENV{PG_CONFIG} // 'pg_config';
my ($sharedir, $pkglibdir) = map { (run_cmd([ $pg_config, $_ ]))[1] =~ s/\s+$//r }
  qw(--sharedir --pkglibdir);
my $destdir = "$tmp/destdir";
make_path("$destdir$sharedir", dirname("$destdir$pkglibdir"));
symlink("$unpacked/usr/share/postgresql/15/extension", "$destdir$sharedir/extension")
  or die "symlink: $!";
symlink("$unpacked/usr/lib/postgresql/15/lib", "$destdir$pkglibdir") or die "symlink: $!";
my $node = start_local(qq{
shared_preload_libraries = '$destdir$pkglibdir/campaign.so'
extension_destdir = '$destdir'
});
$node->safe_psql('postgres', 'CREATE EXTENSION campaign CASCADE');
is($node->safe_psql('postgres', "SELECT extversion FROM pg_extension WHERE extname = 'campaign'"),
	$version, "CREATE EXTENSION from the package's files gives version $version");
ok(wait_for($node,
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'campaign replication worker'",
		'2'), 'the pool of workers runs (campaign.max_workers = 2)');
my $pid = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'campaign replication worker' LIMIT 1");
like(slurp_file("/proc/$pid/maps"), qr/\Q$so\E/, 'the worker runs the packaged campaign.so');
$node->safe_psql('postgres', "SELECT campaign.register_schema(\$x\$${\sample_table_schema()}\$x\$)");
like($node->safe_psql('postgres',
		q{SELECT campaign.xtk_ingest('<sampleTableStg id="p1" testcol1="from the package" xtkschema="dem:sampleTableStg"/>')}),
	qr/^[0-9a-f-]{36}$/, 'ingest works');
is($node->safe_psql('postgres', 'SELECT testcol1 FROM dem.sampletablestg'),
	'from the package', 'the row is staged');
$node->stop;

done_testing();
