package mediator

import (
	"errors"
	"sync"

	"github.com/ocm-overlay/ocm/internal/streamurl"
)

// errClosing answers a request that comes while the mediator closes.
var errClosing = errors.New("mediator is closing")

// registry holds the streams served here, by key: relays by origin URL,
// local streams by path. One goroutine (run) owns the maps; the RTSP
// handlers, the relays and the stats loop send it a request with a reply
// channel. A request never waits on a stream: the registry only finds,
// creates and forgets, so no slow upstream holds it.
type registry struct {
	getRelay  chan getRelayReq
	dropRelay chan dropRelayReq
	getLocal  chan getLocalReq
	addLocal  chan addLocalReq
	dropLocal chan *local
	list      chan listReq

	stop     chan struct{} // closed by shutdown, once nothing asks any more
	stopOnce sync.Once
	done     chan struct{} // closed when run returns
}

// getRelayReq asks for the relay of origin, created by create when there
// is none; create runs on the registry goroutine and must not block.
type getRelayReq struct {
	origin streamurl.Origin
	create func(streamurl.Origin) *relay
	res    chan getRelayRes
}

type getRelayRes struct {
	r   *relay
	err error
}

// dropRelayReq forgets r if it is still the relay of its origin; the
// reply says whether it was.
type dropRelayReq struct {
	r   *relay
	res chan bool
}

type getLocalReq struct {
	name string
	res  chan *local
}

// addLocalReq registers the local stream create makes at name, unless
// name is taken (res gets errTaken) or the mediator closes.
type addLocalReq struct {
	name   string
	create func() (*local, error)
	res    chan addLocalRes
}

type addLocalRes struct {
	l   *local
	err error
}

var errTaken = errors.New("path taken")

// listReq asks for every stream; close also refuses new relays from then on.
type listReq struct {
	close bool
	res   chan streamList
}

type streamList struct {
	relays []*relay
	locals []*local
}

func newRegistry() *registry {
	return &registry{
		getRelay:  make(chan getRelayReq),
		dropRelay: make(chan dropRelayReq),
		getLocal:  make(chan getLocalReq),
		addLocal:  make(chan addLocalReq),
		dropLocal: make(chan *local),
		list:      make(chan listReq),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
}

func (g *registry) run() {
	defer close(g.done)
	relays := map[string]*relay{}
	locals := map[string]*local{}
	closed := false
	for {
		select {
		case <-g.stop:
			return
		case q := <-g.getRelay:
			key := q.origin.URL()
			switch r, ok := relays[key]; {
			case ok:
				q.res <- getRelayRes{r: r}
			case closed:
				q.res <- getRelayRes{err: errClosing}
			default:
				r = q.create(q.origin)
				relays[key] = r
				q.res <- getRelayRes{r: r}
			}
		case q := <-g.dropRelay:
			key := q.r.origin.URL()
			ok := relays[key] == q.r
			if ok {
				delete(relays, key)
			}
			q.res <- ok
		case q := <-g.getLocal:
			q.res <- locals[q.name]
		case q := <-g.addLocal:
			if _, ok := locals[q.name]; ok {
				q.res <- addLocalRes{err: errTaken}
				continue
			}
			if closed {
				q.res <- addLocalRes{err: errClosing}
				continue
			}
			l, err := q.create()
			if err == nil {
				locals[q.name] = l
			}
			q.res <- addLocalRes{l: l, err: err}
		case l := <-g.dropLocal:
			if locals[l.name] == l {
				delete(locals, l.name)
			}
		case q := <-g.list:
			closed = closed || q.close
			var out streamList
			for _, r := range relays {
				out.relays = append(out.relays, r)
			}
			for _, l := range locals {
				out.locals = append(out.locals, l)
			}
			q.res <- out
		}
	}
}

// shutdown stops run and waits for it; later requests get zero replies.
func (g *registry) shutdown() {
	g.stopOnce.Do(func() { close(g.stop) })
	<-g.done
}

// ask sends q on ch and returns the reply from res; after the registry
// stopped it returns the zero reply.
func ask[Q any, R any](g *registry, ch chan Q, q Q, res chan R) R {
	select {
	case ch <- q:
		return <-res
	case <-g.done:
		var zero R
		return zero
	}
}

// relay returns the relay of o, creating it with create when there is none.
func (g *registry) relay(o streamurl.Origin, create func(streamurl.Origin) *relay) (*relay, error) {
	res := make(chan getRelayRes, 1)
	out := ask(g, g.getRelay, getRelayReq{origin: o, create: create, res: res}, res)
	if out.r == nil && out.err == nil {
		return nil, errClosing
	}
	return out.r, out.err
}

// forget unregisters r if it is still its origin's relay, and says so.
func (g *registry) forget(r *relay) bool {
	res := make(chan bool, 1)
	return ask(g, g.dropRelay, dropRelayReq{r: r, res: res}, res)
}

func (g *registry) local(name string) *local {
	res := make(chan *local, 1)
	return ask(g, g.getLocal, getLocalReq{name: name, res: res}, res)
}

func (g *registry) add(name string, create func() (*local, error)) (*local, error) {
	res := make(chan addLocalRes, 1)
	out := ask(g, g.addLocal, addLocalReq{name: name, create: create, res: res}, res)
	if out.l == nil && out.err == nil {
		return nil, errClosing
	}
	return out.l, out.err
}

func (g *registry) remove(l *local) {
	select {
	case g.dropLocal <- l:
	case <-g.done:
	}
}

// streams lists every stream; closing also refuses new ones from then on.
func (g *registry) streams(closing bool) streamList {
	res := make(chan streamList, 1)
	return ask(g, g.list, listReq{close: closing, res: res}, res)
}
