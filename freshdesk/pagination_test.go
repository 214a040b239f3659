package freshdesk_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/opskit/opskit/freshdesk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestConversationsLinkEdgeCases serves pages whose Link headers misbehave.
func TestConversationsLinkEdgeCases(t *testing.T) {
	tests := []struct {
		name    string
		link    func(base string, page int) string // Link header of a page; "" for none
		items   func(page int) int
		want    int
		wantErr string
	}{
		{"loose spacing on every page", func(b string, p int) string {
			if p < 3 {
				return fmt.Sprintf(" <%s/api/v2/tickets/1/conversations?per_page=100&page=%d> ;rel=next", b, p+1)
			}
			return ""
		}, func(int) int { return 2 }, 6, ""},
		{"empty page with a Link ends the list", func(b string, p int) string {
			return fmt.Sprintf(`<%s/api/v2/tickets/1/conversations?page=%d>; rel="next"`, b, p+1)
		}, func(p int) int { return map[int]int{1: 3}[p] }, 3, ""},
		{"Link to the same page", func(b string, p int) string {
			return fmt.Sprintf(`<%s/api/v2/tickets/1/conversations?per_page=100>; rel="next"`, b)
		}, func(int) int { return 1 }, 0, "loops back"},
		{"Link to another host", func(string, int) string {
			return `<https://evil.example/api/v2/tickets/1/conversations?page=2>; rel="next"`
		}, func(int) int { return 1 }, 0, "another host"},
		{"relative Link", func(_ string, p int) string {
			if p == 1 {
				return `</api/v2/tickets/1/conversations?page=2>; rel="next"`
			}
			return ""
		}, func(int) int { return 1 }, 2, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var srv *httptest.Server
			srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				p := 1
				fmt.Sscan(r.URL.Query().Get("page"), &p)
				if l := tt.link(srv.URL, p); l != "" {
					w.Header().Set("Link", l)
				}
				fmt.Fprint(w, "[")
				for i := range tt.items(p) {
					if i > 0 {
						fmt.Fprint(w, ",")
					}
					fmt.Fprintf(w, `{"id":%d}`, p*100+i)
				}
				fmt.Fprint(w, "]")
			}))
			t.Cleanup(srv.Close)
			c := newClient(t, freshdesk.Config{BaseURL: srv.URL + "/api/v2", APIKey: "k"})
			got, err := c.Conversations(t.Context(), 1)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Len(t, got, tt.want)
		})
	}
}
