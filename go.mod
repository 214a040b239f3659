module github.com/opskit/opskit

go 1.26.0
