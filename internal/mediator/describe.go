package mediator

import (
	"strconv"
	"strings"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
)

// describeSDP is the SDP a DESCRIBE is answered with: the stream's medias,
// each with an absolute control URL that names the request's path and
// query, rtsp://HOST:PORT/MEDIA/trackID=N?MSHOST:MSPORT.
//
// gortsplib's own answer gives relative controls (trackID=N) under a
// Content-Base of the request URL plus "/". With an enhanced URL that base
// carries a query, and a player that resolves the relative reference as
// RFC 3986 says (GStreamer) drops the query and the media path: its SETUP
// goes to rtsp://HOST:PORT/trackID=N, a different path for each track, and
// the second SETUP of an audio and video stream is refused. RFC 2326
// (C.1.1) and RFC 7826 (appendix D.1.1) let a=control be absolute, and an
// absolute URL means the same to every player, so every track of the
// session is set up on the one path. The query stays after the track so
// that both forms gortsplib parses (GStreamer's path/trackID=N?query and
// ffmpeg's path?query/trackID=N) lead to the same stream.
func describeSDP(desc *description.Session, req *base.URL, path, query string) ([]byte, error) {
	out := &description.Session{Title: desc.Title, FECGroups: desc.FECGroups}
	prefix := "/" + strings.Trim(path, "/") + "/trackID="
	for i, medi := range desc.Medias {
		if medi.IsBackChannel {
			// gortsplib offers back channels only to clients that ask; we
			// relay none. The track number stays the index in desc.
			continue
		}
		u := &base.URL{Scheme: req.Scheme, Host: req.Host, Path: prefix + strconv.Itoa(i), RawQuery: query}
		out.Medias = append(out.Medias, &description.Media{
			Type:    medi.Type,
			ID:      medi.ID,
			Control: u.String(),
			Formats: medi.Formats,
		})
	}
	return out.Marshal(false)
}
