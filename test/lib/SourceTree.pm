# SourceTree.pm — a clean copy of the extension's source tree, for the
# tests that build or test it from scratch (the Debian package, pg_regress
# against an existing server).
#
# source_root():  the tree the TAP tests run from (TESTDIR, set by PGXS's
#   prove_installcheck, or the current directory).
# copy_source_tree($dest):  copies the tree into $dest without what a build
#   or a test run leaves (.git, objects and modules, tmp_check*, results,
#   logs, debian build products), so that what runs there builds from
#   the sources alone.
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
	  node_modules debian/.debhelper debian/postgresql-* debian/files
	  debian/debhelper-build-stamp);
	push @exclude, map { "--exclude=$_" } qw(*.o *.so *.bc);
	IPC::Run::run([ 'tar', '-C', $root, @exclude, '-cf', '-', '.' ],
		'|', [ 'tar', '-C', $dest, '-xf', '-' ])
	  or die "copy of $root to $dest failed: $?";
	return $dest;
}

1;
