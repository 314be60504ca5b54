package eventstream_test

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// faultNet puts a TCP proxy in front of every broker a client dials (the
// seeds and the addresses the cluster advertises alike, through
// kgo.Dialer), so that a test can black-hole the network: connections
// stay open and nothing more passes either way, as when a cable is pulled
// or a firewall starts dropping packets, and new connections are accepted
// and then hear nothing.
type faultNet struct {
	t *testing.T

	mu      sync.Mutex
	proxies map[string]*faultProxy // broker address → its proxy
	holed   bool
	healed  chan struct{} // closed when the black hole ends
}

func newFaultNet(t *testing.T) *faultNet {
	n := &faultNet{t: t, proxies: map[string]*faultProxy{}, healed: make(chan struct{})}
	close(n.healed)
	t.Cleanup(n.close)
	return n
}

// Option is the client option that routes a client through the proxies.
func (n *faultNet) Option() kgo.Opt {
	var d net.Dialer
	return kgo.Dialer(func(ctx context.Context, network, addr string) (net.Conn, error) {
		p, err := n.proxy(addr)
		if err != nil {
			return nil, err
		}
		return d.DialContext(ctx, network, p.ln.Addr().String())
	})
}

// BlackHole stops every byte, on open connections and new ones.
func (n *faultNet) BlackHole() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.holed {
		n.holed, n.healed = true, make(chan struct{})
	}
}

// Heal lets bytes through again. Connections that were black-holed are
// closed (their requests are lost anyway); clients reconnect.
func (n *faultNet) Heal() {
	n.mu.Lock()
	if n.holed {
		n.holed = false
		close(n.healed)
	}
	ps := make([]*faultProxy, 0, len(n.proxies))
	for _, p := range n.proxies {
		ps = append(ps, p)
	}
	n.mu.Unlock()
	for _, p := range ps {
		p.dropConns()
	}
}

// gate returns nil when bytes may pass, else a channel closed when they may.
func (n *faultNet) gate() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.holed {
		return nil
	}
	return n.healed
}

func (n *faultNet) proxy(addr string) (*faultProxy, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if p := n.proxies[addr]; p != nil {
		return p, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &faultProxy{net: n, target: addr, ln: ln, conns: map[net.Conn]bool{}}
	n.proxies[addr] = p
	p.wg.Go(p.accept)
	return p, nil
}

func (n *faultNet) close() {
	n.Heal()
	n.mu.Lock()
	ps := n.proxies
	n.proxies = map[string]*faultProxy{}
	n.mu.Unlock()
	for _, p := range ps {
		p.ln.Close()
		p.dropConns()
		p.wg.Wait()
	}
}

// faultProxy forwards one listener to one broker.
type faultProxy struct {
	net    *faultNet
	target string
	ln     net.Listener
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]bool
}

func (p *faultProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.track(c)
		p.wg.Go(func() { p.serve(c) })
	}
}

func (p *faultProxy) serve(client net.Conn) {
	defer p.untrack(client)
	// A connection made during a black hole hears nothing until it heals.
	if g := p.net.gate(); g != nil {
		if !p.hold(client, g) {
			return
		}
	}
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	p.track(server)
	defer p.untrack(server)
	var wg sync.WaitGroup
	wg.Go(func() { p.pipe(server, client) })
	wg.Go(func() { p.pipe(client, server) })
	wg.Wait()
}

// hold waits until g is closed or c is closed; false when c was closed.
func (p *faultProxy) hold(c net.Conn, g <-chan struct{}) bool {
	closed := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, c) // ends when c is closed
		close(closed)
	}()
	select {
	case <-g:
		// Healed: Heal closed every connection, this one too.
		<-closed
		return false
	case <-closed:
		return false
	}
}

// pipe copies src to dst; while the network is black-holed, it reads and
// drops what arrives (the sender sees its writes go out, never an answer).
func (p *faultProxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && p.net.gate() == nil {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *faultProxy) track(c net.Conn) {
	p.mu.Lock()
	p.conns[c] = true
	p.mu.Unlock()
}

func (p *faultProxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

// dropConns closes every connection that passed through a black hole, and
// the others too: simpler, and clients reconnect.
func (p *faultProxy) dropConns() {
	p.mu.Lock()
	cs := make([]net.Conn, 0, len(p.conns))
	for c := range p.conns {
		cs = append(cs, c)
	}
	p.mu.Unlock()
	for _, c := range cs {
		c.Close()
	}
}
