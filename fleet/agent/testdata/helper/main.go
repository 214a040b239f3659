// Command helper is a program the agent's tests supervise.
//
//	helper run           print "running" and wait for a signal
//	helper exit N        print "exiting N" and exit with status N
//	helper spam N        write N bytes of output, then wait for a signal
//	helper version V     print "version V" and wait for a signal
package main

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
)

func main() {
	if len(os.Args) < 2 {
		os.Exit(2)
	}
	switch os.Args[1] {
	case "run":
		fmt.Println("running", strings.Join(os.Args[2:], " "))
	case "version":
		fmt.Println("version", os.Args[2])
	case "exit":
		n, _ := strconv.Atoi(os.Args[2])
		fmt.Println("exiting", n)
		os.Exit(n)
	case "spam":
		n, _ := strconv.Atoi(os.Args[2])
		os.Stdout.Write([]byte(strings.Repeat("x", n)))
	}
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}
