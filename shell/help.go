package shell

import (
	"context"
	"fmt"
	"strings"
)

func cmdHelp(_ context.Context, s *Session, args []string) error {
	if len(args) == 1 {
		c := Lookup(args[0])
		if c == nil {
			return fmt.Errorf("help: %w %q; type help for the list of commands", ErrUnknownCommand, args[0])
		}
		fmt.Fprint(s.out, HelpText(c))
		return nil
	}
	fmt.Fprint(s.out, HelpIndex())
	return nil
}

// HelpText is the long help of one command.
func HelpText(c *Command) string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: %s\n", c.Usage())
	if len(c.Aliases) > 0 {
		fmt.Fprintf(&b, "aliases: %s\n", strings.Join(c.Aliases, ", "))
	}
	fmt.Fprintf(&b, "\n%s.\n", c.Summary)
	if c.Help != "" {
		fmt.Fprintf(&b, "\n%s\n", c.Help)
	}
	return b.String()
}

// HelpIndex lists every command with its summary.
func HelpIndex() string {
	var b strings.Builder
	b.WriteString("commands (help COMMAND for details):\n")
	width := 0
	for _, c := range table {
		width = max(width, len(c.Usage()))
	}
	for _, c := range table {
		name := c.Usage()
		fmt.Fprintf(&b, "  %-*s  %s", width, name, c.Summary)
		if len(c.Aliases) > 0 {
			fmt.Fprintf(&b, " (also: %s)", strings.Join(c.Aliases, ", "))
		}
		b.WriteByte('\n')
	}
	b.WriteString("\nQuote arguments with '...' or \"...\". A # that starts a word begins a comment.\n")
	b.WriteString(StartupHelp)
	return b.String()
}

// StartupHelp documents how the shell is started; shown by help and by
// poolctl --help of the shell.
const StartupHelp = `
Starting the shell:
  poolctl [SPEC ...] [-c FILE] [--redis URL] [--name NAME] [--log FILE]
          [--env ENV] [--no-start] [--no-prompt]
  SPEC defaults to $WORKERS. NO_START=1 (or true/yes/on) is --no-start;
  NO_START=0/false/no/off or empty starts the master; any other value is an
  error. Commands are read from standard input when it is not a terminal
  (or with --no-prompt): errors go to standard error as "line N: ...", and
  the exit status is 1 if any command failed.
`
