package federation

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"myelin/keys"
)

// GetURL checks every connection, redirects included, against the private address rule.
func TestGetURLPrivateAddresses(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "content")
	}))
	defer target.Close()
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/file", http.StatusFound)
	}))
	defer redirect.Close()
	key, err := keys.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, allow := range []bool{false, true} {
		c, err := NewClient("hs1.test", key, nil, WithPrivateAddresses(allow))
		if err != nil {
			t.Fatal(err)
		}
		for _, url := range []string{target.URL, redirect.URL} {
			resp, err := c.GetURL(context.Background(), url)
			if !allow {
				if !errors.Is(err, ErrPrivateAddress) {
					t.Errorf("GetURL(%s) with private addresses refused: %v", url, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("GetURL(%s): %v", url, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) != "content" {
				t.Errorf("GetURL(%s) = %q", url, body)
			}
		}
	}
	c, _ := NewClient("hs1.test", key, nil, WithPrivateAddresses(true))
	if _, err := c.GetURL(context.Background(), "file:///etc/passwd"); err == nil {
		t.Error("GetURL fetched a file: URL")
	}
}
