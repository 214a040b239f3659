// Package semtag computes the next semantic-version tag of a Go module and
// creates it, over GitLab's tags API or a local git repository.
package semtag
