// Package systest holds the multi-process system tests: the built tools run
// as separate processes on 127.0.0.1, real players (ffmpeg/ffprobe,
// GStreamer) read through them, and faults are injected with kill -9.
//
// TestMain builds ./cmd/... once into a temporary directory, or uses the
// tools in $OCM_SYSTEST_BIN when set. The tests are skipped with -short. A
// missing player skips the tests that need it, unless $CI is set: then it
// fails them.
package systest
