#!/usr/bin/python3
"""A third-party RTSP origin for the system tests: GStreamer's rtsp-server
serving a live H264 test pattern at rtsp://127.0.0.1:PORT/test, and the same
video with an Opus test tone at rtsp://127.0.0.1:PORT/av.

usage: gst-rtsp-origin.py PORT [ADDRESS]   (0 picks a free port; ADDRESS
defaults to 127.0.0.1, examples/lab.sh gives 0.0.0.0)
Prints one line, "ready ADDRESS:PORT", once it is serving.
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

Gst.init(None)

# x264enc lives in gst-plugins-ugly; openh264enc (plugins-bad) stands in
# where it is missing. Either way: one keyframe a second, no B-frames.
if Gst.ElementFactory.find("x264enc"):
    enc = "x264enc tune=zerolatency key-int-max=25"
elif Gst.ElementFactory.find("openh264enc"):
    enc = "openh264enc gop-size=25 ! h264parse"
else:
    sys.exit("no H264 encoder: install gstreamer1.0-plugins-ugly (x264enc) or -bad (openh264enc)")

VIDEO = (
    "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=25/1 ! "
    + enc + " ! rtph264pay name=pay0 pt=96 config-interval=1"
)
# Opus: opusenc is in gst-plugins-base, rtpopuspay in -good.
AUDIO = (
    "audiotestsrc is-live=true wave=sine ! audioconvert ! audioresample ! "
    "opusenc bitrate=32000 ! rtpopuspay name=pay1 pt=97"
)

server = GstRtspServer.RTSPServer()
address = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1"
server.set_address(address)
server.set_service(sys.argv[1] if len(sys.argv) > 1 else "0")
for path, launch in (("/test", VIDEO), ("/av", VIDEO + " " + AUDIO)):
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch("( " + launch + " )")
    # One pipeline per client. Shared media made GStreamer's server abort
    # under the interop matrix's concurrent clients (2 of 4 full runs:
    # "gst_rtsp_media_get_rates: assertion failed", or every client
    # stalled), a bug of the server, not of its clients.
    factory.set_shared(False)
    server.get_mount_points().add_factory(path, factory)
if server.attach(None) == 0:
    sys.exit("cannot listen on port %s" % server.get_service())
print("ready %s:%d" % (address, server.get_bound_port()), flush=True)
GLib.MainLoop().run()
