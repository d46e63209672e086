package fanout

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	psdp "github.com/pion/sdp/v3"
)

// sdpMedia is one m= section: its type, payload types and the attributes
// that describe the formats (rtpmap, fmtp, ...), without "a=".
type sdpMedia struct {
	kind  string
	pts   []string
	attrs []string
}

// staticPT are the static payload types of RFC 3551 a player may meet.
var staticPT = map[uint8]struct{ kind, rtpmap string }{
	0:  {"audio", "PCMU/8000"},
	3:  {"audio", "GSM/8000"},
	4:  {"audio", "G723/8000"},
	8:  {"audio", "PCMA/8000"},
	9:  {"audio", "G722/8000"},
	10: {"audio", "L16/44100/2"},
	11: {"audio", "L16/44100"},
	14: {"audio", "MPA/90000"},
	26: {"video", "JPEG/90000"},
	31: {"video", "H261/90000"},
	32: {"video", "MPV/90000"},
	33: {"video", "MP2T/90000"},
}

var videoCodecs = []string{"H264", "H265", "VP8", "VP9", "AV1", "JPEG", "MPV", "MP2T", "H261", "H263", "H263-1998", "H263-2000", "RAW"}

// sniffedMedia describes a udp input from the payload type of its first
// packet: a static type is known; a dynamic one is taken to be rtpmap.
func sniffedMedia(pt uint8, rtpmap string) sdpMedia {
	p := strconv.Itoa(int(pt))
	if s, ok := staticPT[pt]; ok {
		return sdpMedia{kind: s.kind, pts: []string{p}, attrs: []string{"rtpmap:" + p + " " + s.rtpmap}}
	}
	enc := strings.ToUpper(strings.SplitN(rtpmap, "/", 2)[0])
	m := sdpMedia{kind: "audio", pts: []string{p}, attrs: []string{"rtpmap:" + p + " " + rtpmap}}
	if slices.Contains(videoCodecs, enc) {
		m.kind = "video"
	}
	switch enc {
	case "H264", "H265":
		m.attrs = append(m.attrs, "fmtp:"+p+" packetization-mode=1")
	}
	return m
}

// mediasFromDescription describes the medias pulled from an RTSP server.
func mediasFromDescription(ms []*description.Media) []sdpMedia {
	out := make([]sdpMedia, 0, len(ms))
	for _, m := range ms {
		sm := sdpMedia{kind: string(m.Type)}
		for _, fo := range m.Formats {
			p := strconv.Itoa(int(fo.PayloadType()))
			sm.pts = append(sm.pts, p)
			if r := fo.RTPMap(); r != "" {
				sm.attrs = append(sm.attrs, "rtpmap:"+p+" "+r)
			}
			if fm := fo.FMTP(); len(fm) > 0 {
				keys := make([]string, 0, len(fm))
				for k := range fm {
					keys = append(keys, k)
				}
				slices.Sort(keys)
				var kv []string
				for _, k := range keys {
					kv = append(kv, k+"="+fm[k])
				}
				sm.attrs = append(sm.attrs, "fmtp:"+p+" "+strings.Join(kv, ";"))
			}
		}
		out = append(out, sm)
	}
	return out
}

// mediasFromSDP takes the media of an SDP describing a udp input (the one
// on port, else the first) and keeps the attributes that describe formats.
func mediasFromSDP(data []byte, port uint16) ([]sdpMedia, error) {
	var sd psdp.SessionDescription
	if err := sd.Unmarshal(data); err != nil {
		return nil, err
	}
	if len(sd.MediaDescriptions) == 0 {
		return nil, errors.New("no media")
	}
	md := sd.MediaDescriptions[0]
	for _, m := range sd.MediaDescriptions {
		if m.MediaName.Port.Value == int(port) {
			md = m
			break
		}
	}
	sm := sdpMedia{kind: md.MediaName.Media, pts: md.MediaName.Formats}
	for _, a := range md.Attributes {
		switch a.Key {
		case "control", "rtcp", "rtcp-mux", "candidate", "setup", "mid":
			continue
		}
		if a.Value == "" {
			sm.attrs = append(sm.attrs, a.Key)
		} else {
			sm.attrs = append(sm.attrs, a.Key+":"+a.Value)
		}
	}
	return []sdpMedia{sm}, nil
}

// sdpText is a session description for a player receiving out: media i on
// port+2i, RTCP on the port above.
func sdpText(out Output, medias []sdpMedia) []byte {
	ip := out.Addr.Addr()
	fam, origin := "IP4", "0.0.0.0"
	if !ip.Is4() {
		fam, origin = "IP6", "::"
	}
	conn := ip.WithZone("").String()
	if ip.Is4() && ip.IsMulticast() {
		ttl := out.TTL
		if ttl == 0 {
			ttl = 1
		}
		conn += "/" + strconv.Itoa(ttl)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "v=0\r\no=- 0 0 IN %s %s\r\ns=rtp-fanout\r\nc=IN %s %s\r\nt=0 0\r\na=tool:rtp-fanout\r\n", fam, origin, fam, conn)
	for i, m := range medias {
		fmt.Fprintf(&b, "m=%s %d RTP/AVP %s\r\n", m.kind, int(out.Addr.Port())+2*i, strings.Join(m.pts, " "))
		for _, a := range m.attrs {
			fmt.Fprintf(&b, "a=%s\r\n", a)
		}
	}
	return []byte(b.String())
}

// writeSDP replaces path atomically, so a player never reads half a file.
func (f *Fanout) writeSDP(medias []sdpMedia) error {
	tmp, err := os.CreateTemp(filepath.Dir(f.SDPFile), ".sdp-*")
	if err != nil {
		return fmt.Errorf("write sdp: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(sdpText(f.sdpOut, medias))
	if err2 := tmp.Close(); err == nil {
		err = err2
	}
	if err == nil {
		_ = os.Chmod(tmp.Name(), 0o644)
		err = os.Rename(tmp.Name(), f.SDPFile)
	}
	if err != nil {
		return fmt.Errorf("write sdp %s: %w", f.SDPFile, err)
	}
	f.Log.Info("sdp written", "path", f.SDPFile, "to", f.sdpOut.String())
	if f.OnSDP != nil {
		f.OnSDP(f.SDPFile)
	}
	return nil
}

// writeStaticSDP writes the SDP at start when the medias are already
// known: from the RTSP server or from InputSDP. A plain udp input waits
// for its first packet instead.
func (f *Fanout) writeStaticSDP() error {
	var medias []sdpMedia
	switch {
	case f.in.Scheme == "rtsp":
		medias = mediasFromDescription(f.src.(*rtspSource).medias)
	case f.InputSDP != "":
		data, err := os.ReadFile(f.InputSDP)
		if errors.Is(err, fs.ErrNotExist) {
			// The sender may not have written it yet (ffmpeg -sdp_file
			// started after this fanout): read it at the first packet.
			return nil
		}
		if err != nil {
			return fmt.Errorf("input sdp: %w", err)
		}
		if medias, err = mediasFromSDP(data, f.in.Bind.Port()); err != nil {
			return fmt.Errorf("input sdp %s: %w", f.InputSDP, err)
		}
	default:
		return nil
	}
	f.sdpDone.Store(true)
	return f.writeSDP(medias)
}

// writeSniffedSDP runs once, on the input path, at the first RTP packet:
// from InputSDP if it has appeared, else from the payload type.
func (f *Fanout) writeSniffedSDP(pt uint8) {
	if !f.sdpDone.CompareAndSwap(false, true) {
		return
	}
	medias := []sdpMedia{sniffedMedia(pt, f.RTPMap)}
	if f.InputSDP != "" {
		data, err := os.ReadFile(f.InputSDP)
		if err == nil {
			var ms []sdpMedia
			if ms, err = mediasFromSDP(data, f.in.Bind.Port()); err == nil {
				medias = ms
			}
		}
		if err != nil {
			f.Log.Warn("input sdp unusable, describing the stream from its payload type", "path", f.InputSDP, "err", err, "rtpmap", medias[0].attrs[0])
		}
	}
	if err := f.writeSDP(medias); err != nil {
		f.Log.Error("cannot write sdp", "err", err)
	}
}
