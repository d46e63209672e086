package lab

import (
	"net"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"
)

// origin is a gortsplib server on 127.0.0.1:0 serving one H264 track.
type origin struct {
	srv    *gortsplib.Server
	stream *gortsplib.ServerStream
	media  *description.Media
}

func (o *origin) OnDescribe(*gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	return &base.Response{StatusCode: base.StatusOK}, o.stream, nil
}

func (o *origin) OnSetup(*gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	return &base.Response{StatusCode: base.StatusOK}, o.stream, nil
}

func (o *origin) OnPlay(*gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func startOrigin(t *testing.T) (*origin, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	o := &origin{media: &description.Media{Type: description.MediaTypeVideo,
		Formats: []format.Format{&format.H264{PayloadTyp: 96, PacketizationMode: 1}}}}
	// The server takes the listener bound above: no window for another
	// process to take the port.
	o.srv = &gortsplib.Server{Handler: o, RTSPAddress: addr,
		Listen: func(string, string) (net.Listener, error) { return ln, nil }}
	if err := o.srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.srv.Close)
	o.stream = &gortsplib.ServerStream{Server: o.srv, Desc: &description.Session{Medias: []*description.Media{o.media}}}
	if err := o.stream.Initialize(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.stream.Close)
	return o, "rtsp://" + addr + "/test"
}

// The reader counts what arrives and, by sequence number, what did not;
// the callback sees every packet.
func TestReaderCountsPacketsAndGaps(t *testing.T) {
	o, url := startOrigin(t)
	var rec Recorder
	r, err := Dial(url, ReaderOptions{OnPacket: rec.OnPacket})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	write := func(seq uint16) {
		err := o.stream.WritePacketRTP(o.media, &rtp.Packet{
			Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq}, Payload: []byte{5, 1, 2}})
		if err != nil {
			t.Fatal(err)
		}
	}
	// 65534, 65535, 0 across the wrap; 1 and 2 lost; then 3.
	for _, seq := range []uint16{65534, 65535, 0, 3} {
		write(seq)
	}
	deadline := time.Now().Add(Patience)
	for r.Packets() < 4 {
		if time.Now().After(deadline) || r.Failed() != nil {
			t.Fatalf("packets %d, session %v", r.Packets(), r.Failed())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if r.Lost() != 2 {
		t.Errorf("lost %d, want 2", r.Lost())
	}
	arr := rec.Arrivals()
	if len(arr) != 4 || arr[2].Seq != 0 || arr[3].Seq != 3 {
		t.Errorf("arrivals %+v", arr)
	}
	if last, ok := rec.Last(); !ok || last.Seq != 3 {
		t.Errorf("last %+v %v", last, ok)
	}
	r.Close()
	if r.Failed() == nil {
		t.Error("a closed reader reports no end")
	}
}

// A server that ends the session ends the reader.
func TestReaderEndsWithTheServer(t *testing.T) {
	o, url := startOrigin(t)
	r, err := Dial(url, ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	o.srv.Close()
	select {
	case <-r.Done():
	case <-time.After(Patience):
		t.Fatal("the reader still reads from a closed server")
	}
	if r.Failed() == nil {
		t.Error("no reason for the end")
	}
}
