// Package all compiles in cedana's runtimes: one file per runtime, each behind the build tags
// `!custom || runtimes || runtimes.<name>`. The default build has every runtime; `-tags custom`
// has none unless `runtimes` (all) or `runtimes.<name>` tags add them.
package all
