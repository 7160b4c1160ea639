/* campaign--1.0--1.1.sql — upgrade of a 1.0 installation to 1.1.
 *
 * `campaign--1.0.sql` is released and never edited again: every SQL change
 * of release 1.1 goes here, in one section per change, each saying which
 * issue made it. `CREATE EXTENSION campaign` installs 1.0 and applies this
 * script, so a fresh install and an upgraded one run the same statements.
 */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION campaign UPDATE TO '1.1'" to load this file. \quit
