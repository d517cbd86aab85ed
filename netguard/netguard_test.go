package netguard

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestIsPrivate(t *testing.T) {
	cases := []struct {
		addr    string
		private bool
	}{
		// IPv4.
		{"0.0.0.0", true},
		{"0.1.2.3", true},
		{"127.0.0.1", true},
		{"127.255.255.254", true},
		{"10.0.0.1", true},
		{"172.16.0.1", true},
		{"172.31.255.255", true},
		{"172.32.0.1", false},
		{"192.168.1.1", true},
		{"169.254.169.254", true}, // cloud metadata
		{"100.64.0.1", true},      // CGNAT
		{"100.127.255.255", true}, // CGNAT, last address
		{"100.63.255.255", false}, // just below CGNAT
		{"100.128.0.0", false},    // just above CGNAT
		{"192.0.0.8", true},
		{"192.0.2.1", true},
		{"198.18.0.1", true},
		{"198.51.100.7", true},
		{"203.0.113.9", true},
		{"224.0.0.1", true},
		{"239.255.255.250", true},
		{"240.0.0.1", true},
		{"255.255.255.255", true},
		{"8.8.8.8", false},
		{"1.1.1.1", false},
		{"93.184.216.34", false},
		// IPv6.
		{"::", true},
		{"::1", true},
		{"fe80::1", true},
		{"fe80::1%eth0", true},
		{"febf:ffff::1", true},
		{"fc00::1", true},
		{"fd12:3456:789a::1", true},
		{"fec0::1", true},
		{"ff02::1", true},
		{"2001:db8::1", true},
		{"2001:4860:4860::8888", false},
		{"2606:4700:4700::1111", false},
		// IPv6 forms carrying an IPv4 address.
		{"::ffff:127.0.0.1", true},
		{"::ffff:10.1.2.3", true},
		{"::ffff:0.0.0.0", true},
		{"::ffff:169.254.169.254", true},
		{"::ffff:100.64.1.1", true},
		{"::ffff:8.8.8.8", false},
		{"::127.0.0.1", true}, // deprecated IPv4-compatible
		{"::8.8.8.8", false},
		{"64:ff9b::10.0.0.1", true}, // NAT64
		{"64:ff9b::8.8.8.8", false},
		{"64:ff9b:1::1", true},
		{"2002:7f00:1::1", true}, // 6to4 of 127.0.0.1
		{"2002:0808:0808::1", false},
	}
	for _, c := range cases {
		ip := netip.MustParseAddr(c.addr)
		if got := IsPrivate(ip); got != c.private {
			t.Errorf("IsPrivate(%s) = %v, want %v", c.addr, got, c.private)
		}
	}
	if !IsPrivate(netip.Addr{}) {
		t.Error("the zero Addr must count as private")
	}
}

func TestCheckAddress(t *testing.T) {
	cases := []struct {
		address string
		ok      bool
	}{
		{"8.8.8.8:443", true},
		{"[2001:4860:4860::8888]:8448", true},
		{"127.0.0.1:8448", false},
		{"[::1]:443", false},
		{"[::ffff:192.168.0.1]:443", false},
		{"0.0.0.0:80", false},
		{"[::]:80", false},
		{"[fe80::1%eth0]:80", false},
		{"example.org:443", false}, // not resolved: refused
		{"no-port", false},
	}
	for _, c := range cases {
		err := CheckAddress(c.address)
		if (err == nil) != c.ok {
			t.Errorf("CheckAddress(%q) = %v, want ok=%v", c.address, err, c.ok)
		}
		if err != nil && !errors.Is(err, ErrPrivateAddress) {
			t.Errorf("CheckAddress(%q): %v does not wrap ErrPrivateAddress", c.address, err)
		}
	}
}

// TestDialer dials a real loopback listener: refused by default, allowed when asked.
func TestDialer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	_, err = Dialer(time.Second, false).DialContext(ctx, "tcp", ln.Addr().String())
	if !errors.Is(err, ErrPrivateAddress) {
		t.Fatalf("dial to loopback: got %v, want ErrPrivateAddress", err)
	}
	// "localhost" resolves to loopback: the check runs after resolution.
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	_, err = Dialer(time.Second, false).DialContext(ctx, "tcp", net.JoinHostPort("localhost", port))
	if !errors.Is(err, ErrPrivateAddress) {
		t.Fatalf("dial to localhost: got %v, want ErrPrivateAddress", err)
	}
	conn, err := Dialer(time.Second, true).DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dial with private addresses allowed: %v", err)
	}
	conn.Close()
	if Control(true) != nil {
		t.Error("Control(true) must not check")
	}
}
