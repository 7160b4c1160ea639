# SourceTree.pm — a clean copy of the extension's source tree, for the
# tests that build or test it from scratch (the Debian package, pg_regress
# against an existing server).
#
# source_root():  the tree the TAP tests run from (TESTDIR, set by PGXS's
#   prove_installcheck, or the current directory).
# copy_source_tree($dest):  copies the tree into $dest without what a build
#   or a test run leaves (.git, tmp_check*, results, logs, debian build
#   products); objects left by a build are removed by the copy's own
#   `make clean` where the test needs that.
package SourceTree;

use strict;
use warnings;
use Exporter 'import';
use Cwd qw(getcwd);
use File::Path qw(make_path);
use IPC::Run;

our @EXPORT = qw(source_root copy_source_tree);

sub source_root
{
	return $ENV{TESTDIR} // getcwd();
}

sub copy_source_tree
{
	my ($dest) = @_;
	my $root = source_root();
	make_path($dest);
	my @exclude = map { "--exclude=./$_" } qw(.git tmp_check tmp_check_regress
	  results log regression.diffs regression.out demo_data bench_data
	  debian/.debhelper debian/postgresql-15-campaign debian/files
	  debian/debhelper-build-stamp);
	IPC::Run::run([ 'tar', '-C', $root, @exclude, '-cf', '-', '.' ],
		'|', [ 'tar', '-C', $dest, '-xf', '-' ])
	  or die "copy of $root to $dest failed: $?";
	return $dest;
}

1;
