// Command server is the QFLARE coordinator: it serves the join page, the
// dashboard and the WebSocket protocol, runs federated rounds and stores them
// in SQLite. Its subcommands:
//
//	server serve    start the server (with --demo, a ready MNIST run)
//	server backup   copy the database while the server runs
//	server restore  put a backup back as the database
//	server health   exit 0 if the local server is ready
//	server sim      simulate a federation with in-process clients
//	server study    run a grid of simulations
//	server train    centralized training baseline
//
// Run "server <command> -h" for a command's flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// command is one subcommand: it parses args and runs until done or ctx ends.
type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "start the server", runServe},
		{"backup", "copy the database while the server runs", runBackup},
		{"restore", "put a backup back as the database (server stopped)", runRestore},
		{"health", "exit 0 if the local server is ready (container health checks)", runHealth},
		{"sim", "simulate a federation with in-process clients", runSim},
		{"study", "run a grid of simulations and print a table (codecs, robust, dp)", runStudy},
		{"train", "centralized training baseline", runTrain},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return fmt.Errorf("no command given")
		}
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			if err := c.run(ctx, args[1:], stdout, stderr); !errors.Is(err, flag.ErrHelp) {
				return err
			}
			return nil // -h printed the command's usage
		}
	}
	usage(stderr)
	return fmt.Errorf("unknown command %q", args[0])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: server <command> [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-7s %s\n", c.name, c.summary)
	}
}
