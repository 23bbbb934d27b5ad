package kind

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// The kind library drives the Docker engine through the docker command;
// secprov does the same for what the library does not offer, so both
// reach the same engine (DOCKER_HOST, docker contexts) the same way.

// dockerCommand is the Docker CLI's name.
const dockerCommand = "docker"

// dockerError is a failed docker command: what ran and what it said.
type dockerError struct {
	args   []string
	stderr string
	err    error
}

func (e *dockerError) Error() string {
	msg := strings.TrimSpace(e.stderr)
	if msg == "" {
		msg = e.err.Error()
	}
	return fmt.Sprintf("docker %s: %s", strings.Join(e.args, " "), msg)
}

func (e *dockerError) Unwrap() error { return e.err }

// notFound reports whether a docker error says the object does not exist.
func notFound(err error) bool {
	var de *dockerError
	if !errors.As(err, &de) {
		return false
	}
	s := strings.ToLower(de.stderr)
	return strings.Contains(s, "no such") || strings.Contains(s, "not found")
}

// docker runs the docker command and returns its standard output.
func docker(ctx context.Context, args ...string) ([]byte, error) {
	return dockerIn(ctx, nil, args...)
}

// dockerIn is docker with stdin.
func dockerIn(ctx context.Context, stdin io.Reader, args ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, dockerCommand, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), &dockerError{args: args, stderr: stderr.String(), err: err}
	}
	return stdout.Bytes(), nil
}

// engineInfo is what secprov needs to know of the Docker engine.
type engineInfo struct {
	ServerVersion string
	CgroupVersion string
}

// checkEngine returns the engine's facts, or the one error a user can act
// on when there is no engine: before anything is created.
func checkEngine(ctx context.Context) (engineInfo, error) {
	if _, err := exec.LookPath(dockerCommand); err != nil {
		return engineInfo{}, errors.New("kind clusters need Docker, and the docker command is not installed: install Docker (Debian: apt-get install docker.io), start it, and run secprov again")
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, err := docker(ctx, "info", "--format", `{"ServerVersion":{{json .ServerVersion}},"CgroupVersion":{{json .CgroupVersion}}}`)
	var info engineInfo
	if err == nil {
		err = json.Unmarshal(out, &info)
	}
	if err != nil || info.ServerVersion == "" {
		where := "the local Docker engine"
		if h := os.Getenv("DOCKER_HOST"); h != "" {
			where = "the Docker engine at DOCKER_HOST=" + h
		}
		return engineInfo{}, fmt.Errorf("kind clusters need a running Docker engine, and %s does not answer (%v): start it (systemctl start docker, or dockerd in the background), or point DOCKER_HOST at one, and run secprov again", where, err)
	}
	return info, nil
}

// hostFacts asks the engine and the host what the nodes will share with
// them. The kernel settings are read on this machine when the engine runs
// here; a remote engine's are unknown, and then protection stays off.
func hostFacts(ctx context.Context) (HostFacts, engineInfo, error) {
	info, err := checkEngine(ctx)
	if err != nil {
		return HostFacts{}, info, err
	}
	f := HostFacts{CgroupV1: info.CgroupVersion == "1"}
	if localEngine() {
		f.KernelDefaults = len(kernelDefaultsMissing()) == 0
	}
	return f, info, nil
}

// localEngine reports whether the Docker engine runs on this machine.
func localEngine() bool {
	h := os.Getenv("DOCKER_HOST")
	return h == "" || strings.HasPrefix(h, "unix://")
}

// kubeletKernelDefaults are the sysctl values the kubelet needs; with
// protectKernelDefaults it refuses to start unless they hold, without it
// it sets them, and a kind node's kubelet shares them with the host.
var kubeletKernelDefaults = []struct {
	key  string
	want int
}{
	{"vm/overcommit_memory", 1},
	{"vm/panic_on_oom", 0},
	{"kernel/panic", 10},
	{"kernel/panic_on_oops", 1},
	{"kernel/keys/root_maxkeys", 1000000},
	{"kernel/keys/root_maxbytes", 25000000},
}

// kernelDefaultsMissing lists the host's settings that differ from what
// the kubelet needs, as sysctl NAME=VALUE (want).
func kernelDefaultsMissing() []string {
	var out []string
	for _, k := range kubeletKernelDefaults {
		data, err := os.ReadFile("/proc/sys/" + k.key)
		got, perr := strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil || perr != nil || got != k.want {
			out = append(out, fmt.Sprintf("%s=%s (kubelet needs %d)", strings.ReplaceAll(k.key, "/", "."), strings.TrimSpace(string(data)), k.want))
		}
	}
	return out
}

// container is a node container as docker ps lists it.
type container struct {
	Name     string
	State    string // running, exited, created, paused, restarting, dead
	Networks []string
}

// Running reports whether the container runs.
func (c container) Running() bool { return c.State == "running" }

// kindClusterLabel is the label kind puts on a cluster's node containers.
const kindClusterLabel = "io.x-k8s.kind.cluster"

// clusterContainers lists the node containers of the kind cluster name,
// stopped ones included.
func clusterContainers(ctx context.Context, name string) ([]container, error) {
	out, err := docker(ctx, "ps", "-a", "--filter", "label="+kindClusterLabel+"="+name, "--format", "{{.Names}}\t{{.State}}\t{{.Networks}}")
	if err != nil {
		return nil, err
	}
	var cs []container
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "\t")
		if len(f) < 3 || f[0] == "" {
			continue
		}
		cs = append(cs, container{Name: f[0], State: f[1], Networks: strings.Split(f[2], ",")})
	}
	return cs, nil
}

// nodeIP is a node container's address on its cluster's network.
func nodeIP(ctx context.Context, node, network string) (string, error) {
	out, err := docker(ctx, "inspect", "--format", fmt.Sprintf(`{{with index .NetworkSettings.Networks %q}}{{.IPAddress}}{{end}}`, network), node)
	if err != nil {
		return "", err
	}
	ip := strings.TrimSpace(string(out))
	if ip == "" {
		return "", fmt.Errorf("node %s has no address on network %s", node, network)
	}
	return ip, nil
}

// nodeExec runs a command in a node container and returns its output.
func nodeExec(ctx context.Context, node string, args ...string) ([]byte, error) {
	return docker(ctx, append([]string{"exec", node}, args...)...)
}

// nodeSh runs a shell script in a node container; args are $1, $2, ….
func nodeSh(ctx context.Context, node, script string, args ...string) ([]byte, error) {
	return nodeExec(ctx, node, append([]string{"sh", "-c", script, "sh"}, args...)...)
}

// network labels: secprov made it, for which cluster and environment.
const (
	labelCluster     = "dev.secprov.cluster"
	labelEnvironment = "dev.secprov.environment"
)

// networkLabels returns the labels of a Docker network; found is false
// when there is none of that name.
func networkLabels(ctx context.Context, name string) (labels map[string]string, found bool, err error) {
	out, err := docker(ctx, "network", "inspect", "--format", "{{json .Labels}}", name)
	if notFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if err := json.Unmarshal(bytes.TrimSpace(out), &labels); err != nil {
		return nil, true, fmt.Errorf("network %s: labels: %w", name, err)
	}
	return labels, true, nil
}
