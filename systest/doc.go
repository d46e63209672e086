// Package systest holds the multi-process system tests: the built tools run
// as separate processes on 127.0.0.1, real players (ffmpeg/ffprobe,
// GStreamer) read through them, and faults are injected with kill -9.
//
// The processes, their ready lines and events, the hosts of an overlay and
// the server's trees come from internal/lab, which bench uses too. TestMain
// builds ./cmd/... once into a temporary directory, or uses the tools in
// $OCM_SYSTEST_BIN when set. The tests are skipped with -short. A
// missing player skips the tests that need it, unless $CI is set: then it
// fails them.
//
// TestInterop plays every common codec pair through every path with every
// player, TCP and UDP (README: "Streams and players tested"); TestAVSwitch
// kills a relay's parent under GStreamer playing audio and video.
//
// The overlay tests (overlay, recovery, handover, chaos) run many hosts,
// each an ocm-relay, an rtsp-mediator and a player. TestChaos is off by
// default: OCM_CHAOS=60s enables it (OCM_CHAOS_SEED replays a schedule,
// OCM_CHAOS_RECOVERY picks the policy). A failed test logs the tail of
// every process's output; OCM_SYSTEST_LOGS=DIR also keeps all of it, one
// directory per test.
package systest
