// Command helper is a program the agent's tests supervise.
//
//	helper run           print "running" and wait for a signal
//	helper exit N        print "exiting N" and exit with status N
//	helper spam N        write N bytes of output, then wait for a signal
//	helper version V     print "version V" and wait for a signal
//	helper stubborn      print "stubborn" and ignore SIGTERM
package main

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
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
	case "stubborn":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("stubborn")
		for {
			time.Sleep(time.Hour)
		}
	case "spam":
		n, _ := strconv.Atoi(os.Args[2])
		os.Stdout.Write([]byte(strings.Repeat("x", n)))
	}
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}
