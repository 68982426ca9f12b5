package web

import (
	"net/http"
	"net/url"
	"strconv"
)

// The staff lists page on the server: ?page=N&size=M, with the list's filters kept in
// every link, so that paging needs no script and a page's address can be shared.

// pageSizes are the sizes a list offers; the first is the default.
var pageSizes = []int{50, 25, 100}

// pager is the page of a list a request asks for.
type pager struct {
	path    string
	filters url.Values // the list's filters, kept in the links
	Page    int        // from 1
	Size    int
}

// pagerFor reads ?page and ?size; anything else is the first page of the default size.
// filters are the list's own parameters, carried into its links.
func pagerFor(r *http.Request, filters url.Values) pager {
	q := r.URL.Query()
	p := pager{path: r.URL.Path, filters: filters, Page: 1, Size: pageSizes[0]}
	if n, err := strconv.Atoi(q.Get("page")); err == nil && n > 1 && n <= 1_000_000 {
		p.Page = n
	}
	if n, err := strconv.Atoi(q.Get("size")); err == nil {
		for _, s := range pageSizes {
			if s == n {
				p.Size = n
			}
		}
	}
	return p
}

// Offset is how many items come before the page.
func (p pager) Offset() int { return (p.Page - 1) * p.Size }

// pageNav is what the pagination shows under a list: "Showing 51–100 of 312", and
// links to the pages before and after.
type pageNav struct {
	From, To, Total int
	Page, Pages     int
	First, Prev     string // links; "" on the first page
	Next, Last      string // "" on the last
	Sizes           []sizeLink
}

// sizeLink offers another page size.
type sizeLink struct {
	Size    int
	Href    string
	Current bool
}

// nav says where the page is among total items.
func (p pager) nav(total int) pageNav {
	pages := max(1, (total+p.Size-1)/p.Size)
	n := pageNav{Total: total, Page: p.Page, Pages: pages}
	if total > 0 && p.Offset() < total {
		n.From, n.To = p.Offset()+1, min(total, p.Offset()+p.Size)
	}
	if p.Page > 1 {
		n.First, n.Prev = p.link(1, p.Size), p.link(min(p.Page-1, pages), p.Size)
	}
	if p.Page < pages {
		n.Next, n.Last = p.link(p.Page+1, p.Size), p.link(pages, p.Size)
	}
	for _, s := range pageSizes {
		n.Sizes = append(n.Sizes, sizeLink{Size: s, Href: p.link(1, s), Current: s == p.Size})
	}
	return n
}

// link is the address of a page of the list, with its filters.
func (p pager) link(page, size int) string {
	q := url.Values{}
	for k, v := range p.filters {
		if len(v) > 0 && v[0] != "" {
			q[k] = v
		}
	}
	if page > 1 {
		q.Set("page", strconv.Itoa(page))
	}
	if size != pageSizes[0] {
		q.Set("size", strconv.Itoa(size))
	}
	if len(q) == 0 {
		return p.path
	}
	return p.path + "?" + q.Encode()
}
