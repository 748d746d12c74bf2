package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/poolctl/poolctl/pool/poolfs"
	"github.com/poolctl/poolctl/service"
	"github.com/poolctl/poolctl/spec"
)

// defaultTemplateConfig is where a template unit's instances find their
// config files.
const defaultTemplateConfig = "/etc/poolctl/" + service.Instance + ".yml"

// runExport is `poolctl export systemd|supervisord [-c FILE] [--name NAME]
// [--user USER] [--template] [--runtime-dir DIR]`: it prints a unit file
// or a program section that runs the pool's master (package service).
func runExport(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("export", stderr)
	configPath := fs.String("c", "", "the pool's config `FILE` (a template: a pattern with %i for the pool name, default "+defaultTemplateConfig+")")
	name := fs.String("name", "", "pool `NAME` (default: the config file's name without its extension)")
	user := fs.String("user", "", "run the master as `USER` (default: the service manager's user, root)")
	template := fs.Bool("template", false, "systemd: print poolctl@.service, whose instance name is the pool name")
	runtimeDir := fs.String("runtime-dir", "", "the service's POOLCTL_RUNTIME_DIR, the `DIR` in which poolctl attach finds the pool (default: /run/poolctl-NAME for systemd, created by systemd; $TMPDIR/poolctl-NAME for supervisord)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: poolctl export systemd|supervisord [-c FILE] [--name NAME] [--user USER] [--template] [--runtime-dir DIR]")
		fs.PrintDefaults()
	}
	pos, err := parseFlagsAnywhere(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return fmt.Errorf("%w: export takes one format, systemd or supervisord", errUsage)
	}
	if len(pos) != 1 || (pos[0] != "systemd" && pos[0] != "supervisord") {
		return fmt.Errorf("%w: export takes one format, systemd or supervisord (got %q)", errUsage, strings.Join(pos, " "))
	}
	format := pos[0]
	if *template && format != "systemd" {
		return fmt.Errorf("%w: --template: supervisord has no templates; export one section per pool", errUsage)
	}
	bin, err := os.Executable()
	if err != nil {
		return fmt.Errorf("export: cannot find the poolctl binary: %w", err)
	}
	s := service.Spec{Binary: bin, User: *user, Template: *template}
	if *template {
		err = templateSpec(&s, *configPath, *name, stderr)
	} else {
		err = poolSpec(&s, *configPath, *name)
	}
	if err != nil {
		return err
	}
	s.RuntimeDir = *runtimeDir
	if s.RuntimeDir == "" {
		s.RuntimeDir = defaultRuntimeDir(format, s)
	} else if s.RuntimeDir, err = filepath.Abs(s.RuntimeDir); err != nil {
		return fmt.Errorf("--runtime-dir: %w", err)
	}
	out, err := render(format, s)
	if err != nil {
		return fmt.Errorf("%w: export %s: %v", errUsage, format, err)
	}
	_, err = io.WriteString(stdout, out)
	return err
}

func render(format string, s service.Spec) (string, error) {
	if format == "systemd" {
		return service.Systemd(s)
	}
	return service.Supervisord(s)
}

// poolSpec fills s for one pool from its config file, which must load.
func poolSpec(s *service.Spec, configPath, name string) error {
	if configPath == "" {
		return fmt.Errorf("%w: export needs -c FILE, the config file the service runs", errUsage)
	}
	abs, err := filepath.Abs(configPath)
	if err != nil {
		return fmt.Errorf("config path: %w", err)
	}
	cfg, err := spec.LoadConfig(abs, "")
	if err != nil {
		return fmt.Errorf("%w: -c %s: %v", errUsage, configPath, err)
	}
	where := "--name"
	if name == "" {
		name, where = strings.TrimSuffix(filepath.Base(abs), filepath.Ext(abs)), "no --name, and the config file's name makes none"
	}
	if err := poolfs.ValidatePoolName(name); err != nil {
		return fmt.Errorf("%w: %s: %v", errUsage, where, err)
	}
	s.Name, s.Config, s.WorkDir, s.TermTimeout = name, abs, filepath.Dir(abs), cfg.TermTimeout
	return nil
}

// templateSpec fills s for a template from the config pattern: every
// config file that already matches it must load, and the stop timeout
// follows the largest term_timeout among them (the default when none
// exists yet; say so, since a later instance may need more).
func templateSpec(s *service.Spec, pattern, name string, stderr io.Writer) error {
	if name != "" {
		return fmt.Errorf("%w: --name with --template: the instance name (poolctl@NAME) names the pool", errUsage)
	}
	if pattern == "" {
		pattern = defaultTemplateConfig
	}
	abs, err := filepath.Abs(pattern)
	if err != nil {
		return fmt.Errorf("config path: %w", err)
	}
	if !strings.Contains(abs, service.Instance) {
		return fmt.Errorf("%w: -c %s: a template's config is a pattern with %s for the pool name, e.g. %s", errUsage, pattern, service.Instance, defaultTemplateConfig)
	}
	glob := strings.ReplaceAll(abs, service.Instance, "*")
	matches, err := filepath.Glob(glob)
	if err != nil {
		return fmt.Errorf("%w: -c %s: %v", errUsage, pattern, err)
	}
	term := time.Duration(-1)
	for _, m := range matches {
		cfg, err := spec.LoadConfig(m, "")
		if err != nil {
			return fmt.Errorf("%w: %s (matches -c %s): %v", errUsage, m, pattern, err)
		}
		term = max(term, cfg.TermTimeout)
	}
	if term < 0 {
		term = spec.DefaultTermTimeout
		fmt.Fprintf(stderr, "poolctl: export: no config file matches %s yet: TimeoutStopSec assumes term_timeout %s (override it per instance with a drop-in)\n", glob, term)
	}
	s.Config, s.WorkDir, s.TermTimeout = abs, filepath.Dir(abs), term
	return nil
}

// defaultRuntimeDir is where the service's pool files go. systemd creates
// /run/poolctl-NAME for the service's user (RuntimeDirectory=), since a
// system service has no XDG_RUNTIME_DIR; supervisord creates nothing, so
// its master makes a private directory of its own in /tmp.
func defaultRuntimeDir(format string, s service.Spec) string {
	name := s.Name
	if s.Template {
		name = service.Instance
	}
	if format == "systemd" {
		return "/run/poolctl-" + name
	}
	return filepath.Join(os.TempDir(), "poolctl-"+name)
}
