package images

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
)

// docker runs the Docker CLI. The CLI (not the Engine API) keeps secprov
// free of Docker's client module and works with whatever DOCKER_HOST or
// context the user has set up, as kind does.
type docker struct {
	cmd string
	log *slog.Logger
}

// dockerError quotes the end of a failed docker command's stderr.
func dockerError(args []string, err error, stderr []byte) error {
	msg := strings.TrimSpace(string(stderr))
	if len(msg) > 2000 {
		msg = "…" + msg[len(msg)-2000:]
	}
	if msg == "" {
		return fmt.Errorf("docker %s: %w", args[0], err)
	}
	return fmt.Errorf("docker %s: %w: %s", args[0], err, msg)
}

// run runs docker with args, stdin from in (may be nil), and returns its
// standard output.
func (d docker) run(ctx context.Context, in io.Reader, args ...string) ([]byte, error) {
	return d.runEnv(ctx, nil, in, args...)
}

// runEnv is run with extra environment variables for the docker CLI.
func (d docker) runEnv(ctx context.Context, env []string, in io.Reader, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, d.cmd, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stdin = in
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	d.log.Debug("docker", "args", args)
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return out.Bytes(), dockerError(args, err, errb.Bytes())
	}
	return out.Bytes(), nil
}

// check fails with advice when no Docker engine answers.
func (d docker) check(ctx context.Context) error {
	if _, err := exec.LookPath(d.cmd); err != nil {
		return fmt.Errorf("offline images are built with Docker, and the %q command is not installed: install Docker (Debian: apt-get install docker.io) and start dockerd", d.cmd)
	}
	if _, err := d.run(ctx, nil, "version", "--format", "{{.Server.Version}}"); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("no Docker engine answers: %w; start dockerd (systemctl start docker, or run dockerd) or point DOCKER_HOST at one", err)
	}
	return nil
}

// imageInfo is what secprov reads from `docker image inspect`.
type imageInfo struct {
	ID     string
	Size   int64
	Labels map[string]string
}

// inspect returns the image's info; ok is false when no such image exists.
func (d docker) inspect(ctx context.Context, ref string) (info imageInfo, ok bool, err error) {
	out, err := d.run(ctx, nil, "image", "inspect", "--format", "{{json .}}", ref)
	if err != nil {
		if ctx.Err() != nil {
			return info, false, ctx.Err()
		}
		if strings.Contains(err.Error(), "No such image") || strings.Contains(err.Error(), "No such object") {
			return info, false, nil
		}
		return info, false, err
	}
	var raw struct {
		ID     string `json:"Id"`
		Size   int64
		Config struct {
			Labels map[string]string
		}
	}
	if err := json.Unmarshal(out, &raw); err != nil {
		return info, false, fmt.Errorf("reading docker image inspect %s: %w", ref, err)
	}
	return imageInfo{ID: raw.ID, Size: raw.Size, Labels: raw.Config.Labels}, true, nil
}

// current reports whether ref exists and was built from inputs with this
// digest.
func (d docker) current(ctx context.Context, ref, digest string) (imageInfo, bool, error) {
	info, ok, err := d.inspect(ctx, ref)
	if err != nil || !ok {
		return info, false, err
	}
	return info, info.Labels[LabelInputs] == digest, nil
}

// importTar makes an image from a filesystem tarball read from r, with
// Dockerfile-style changes (ENV, ENTRYPOINT, LABEL…).
func (d docker) importTar(ctx context.Context, r io.Reader, ref string, changes []string) error {
	args := []string{"import"}
	for _, c := range changes {
		args = append(args, "--change", c)
	}
	args = append(args, "-", ref)
	_, err := d.run(ctx, r, args...)
	return err
}

func (d docker) tag(ctx context.Context, src, dst string) error {
	_, err := d.run(ctx, nil, "tag", src, dst)
	return err
}

// save streams `docker save refs...` into w.
func (d docker) save(ctx context.Context, w io.Writer, refs ...string) error {
	args := append([]string{"save"}, refs...)
	cmd := exec.CommandContext(ctx, d.cmd, args...)
	var errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = w, &errb
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return dockerError(args, err, errb.Bytes())
	}
	return nil
}

// exec runs a command in a running container.
func (d docker) exec(ctx context.Context, container string, in io.Reader, argv ...string) ([]byte, error) {
	args := []string{"exec"}
	if in != nil {
		args = append(args, "-i")
	}
	args = append(append(args, container), argv...)
	return d.run(ctx, in, args...)
}

// removeContainer removes a container, ignoring one that is gone. It runs
// without the caller's context so cleanup happens after a cancel too.
func (d docker) removeContainer(name string) {
	if _, err := d.run(context.Background(), nil, "rm", "-f", "-v", name); err != nil {
		d.log.Warn("could not remove a build container", "container", name, "err", err)
	}
}
