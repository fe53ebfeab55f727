package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// envPrefix starts the environment variable of every flag: --admin-token
// is also $QFLARE_ADMIN_TOKEN.
const envPrefix = "QFLARE_"

// envName returns the environment variable that can set flag name.
func envName(name string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// applyEnv sets each flag of fs (all of them, or only those named in only)
// that the command line did not give from its environment variable, when
// that is set and not empty: a flag beats the environment, which beats the
// default. lookup is os.LookupEnv in the program. A value the flag does not
// accept is an error naming the variable.
func applyEnv(fs *flag.FlagSet, lookup func(string) (string, bool), only ...string) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || (len(only) > 0 && !contains(only, f.Name)) {
			return
		}
		v, ok := lookup(envName(f.Name))
		if !ok || v == "" {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("$%s: %v", envName(f.Name), err))
		}
	})
	return errors.Join(errs...)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// envUsage sets fs's usage message: the summary, then every flag (all, or
// those in only) with the environment variable that can set it.
func envUsage(fs *flag.FlagSet, summary string, only ...string) {
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "%s\n\nflags (a flag beats its environment variable, which beats the default):\n", summary)
		fs.VisitAll(func(f *flag.Flag) {
			printFlag(w, f, len(only) == 0 || contains(only, f.Name))
		})
	}
}

func printFlag(w io.Writer, f *flag.Flag, withEnv bool) {
	name, usage := flag.UnquoteUsage(f)
	line := "  --" + f.Name
	if name != "" {
		line += " " + name
	}
	if withEnv {
		line += "  ($" + envName(f.Name) + ")"
	}
	fmt.Fprintln(w, line)
	if def := f.DefValue; def != "" && def != "false" && def != "0" && def != "0s" {
		usage += fmt.Sprintf(" (default %s)", def)
	}
	fmt.Fprintf(w, "      %s\n", usage)
}
