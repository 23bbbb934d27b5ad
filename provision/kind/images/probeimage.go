package images

import (
	"context"
	_ "embed"
	"strconv"
)

// probeSource is the network probe program (probe/main.go): verify runs
// it in pods to send and answer test traffic. It needs the standard
// library only, so it builds offline in seconds.
//
//go:embed probe/main.go
var probeSource string

// ProbeBinary is where the probe image keeps the program.
const ProbeBinary = "/secprov-probe"

// ProbeUser is the unprivileged user the probe image runs as (Pod
// Security restricted needs a non-root user).
const ProbeUser = 65532

func probeRecipe() goRecipe {
	r := goRecipe{
		name: "probe",
		files: map[string]string{
			"go.mod":  "module secprov-images/probe\n\n" + wrapperGo + "\n",
			"main.go": probeSource,
		},
		steps: [][]string{{"build", "-trimpath", "-ldflags", "-s -w", "-o", "{out}/secprov-probe", "."}},
		env:   []string{"CGO_ENABLED=0"},
		bins:  []string{"secprov-probe"},
	}
	r.inputs.Add("source", bytesSHA256([]byte(probeSource)))
	return r
}

// probeImage compiles the probe and makes its image: the program, run as
// an unprivileged user, and nothing else.
func (b *builder) probeImage(ctx context.Context) (Ref, error) {
	var out goOutput
	if err := b.step("go build secprov-probe", func() (bool, error) {
		var cached bool
		var err error
		out, cached, err = b.ensureGo(ctx, probeRecipe())
		return cached, err
	}); err != nil {
		return Ref{}, err
	}
	sum := out.SHA256["secprov-probe"]
	var inputs Inputs
	inputs.Add("image", "probe")
	inputs.Add("bin.sha256", sum)
	repo := Repository + "/probe"
	user := strconv.Itoa(ProbeUser)
	tag, err := b.importImage(ctx, imageRecipe{
		name: "probe", ref: Ref{Repository: repo, Tag: "v1"}, inputs: inputs,
		changes: []string{`ENTRYPOINT ["` + ProbeBinary + `"]`, "USER " + user + ":" + user},
		comps:   []Component{{Name: "secprov-probe", Version: "v1", Source: "secprov (provision/kind/images/probe, standard library only)", SHA256: sum}},
		write: func(l *layer) error {
			if err := minimalFiles(l); err != nil {
				return err
			}
			return l.file(ProbeBinary, 0o755, out.bin("secprov-probe"))
		},
	})
	return Ref{Repository: repo, Tag: tag}, err
}
