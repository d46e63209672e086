module github.com/ocm-overlay/ocm

go 1.26

require (
	github.com/bluenviron/gortsplib/v4 v4.16.2
	github.com/bluenviron/mediacommon/v2 v2.4.1
	github.com/fatih/color v1.15.0
	github.com/google/uuid v1.6.0
	github.com/inconshreveable/mousetrap v1.1.0
	github.com/mattn/go-colorable v0.1.13
	github.com/mattn/go-isatty v0.0.19
	github.com/mattn/go-runewidth v0.0.16
	github.com/olekukonko/errors v1.1.0
	github.com/olekukonko/ll v0.0.9
	github.com/olekukonko/tablewriter v1.0.9
	github.com/pion/logging v0.2.3
	github.com/pion/randutil v0.1.0
	github.com/pion/rtcp v1.2.15
	github.com/pion/rtp v1.8.21
	github.com/pion/sdp/v3 v3.0.15
	github.com/pion/srtp/v3 v3.0.6
	github.com/pion/transport/v3 v3.0.7
	github.com/rivo/uniseg v0.2.0
	github.com/spf13/cobra v1.9.1
	github.com/spf13/pflag v1.0.6
	golang.org/x/net v0.43.0
	golang.org/x/sys v0.35.0
)

require (
	github.com/chromedp/cdproto v0.159.0 // indirect
	github.com/chromedp/chromedp v0.23.0 // indirect
	github.com/go-json-experiment/json v0.0.0-20260213210345-44df1a37e875 // indirect
)
