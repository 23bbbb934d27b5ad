package images

import (
	"context"
	"errors"
	"fmt"
)

// Offline returns the offline set the last `secprov images build` made,
// after checking that every image of it is still in the Docker engine.
// It fails with advice to run `secprov images build` when there is none.
func Offline(ctx context.Context) (Set, error) {
	return OfflineWith(ctx, Options{})
}

// OfflineWith is Offline with a cache directory, logger or docker command
// of the caller's.
func OfflineWith(ctx context.Context, opts Options) (Set, error) {
	cache, err := opts.cacheDir()
	if err != nil {
		return Set{}, err
	}
	m, err := ReadManifest(ManifestPath(cache))
	if err != nil {
		return Set{}, err
	}
	d := opts.dockerCmd()
	if err := d.check(ctx); err != nil {
		return Set{}, err
	}
	var errs []error
	for _, im := range m.Images {
		info, ok, err := d.current(ctx, im.Ref.String(), im.Inputs)
		switch {
		case err != nil:
			errs = append(errs, err)
		case !ok && info.ID == "":
			errs = append(errs, fmt.Errorf("%s (%s) is not in the Docker engine", im.Name, im.Ref))
		case !ok:
			errs = append(errs, fmt.Errorf("%s (%s) in the Docker engine was not built from the recorded inputs", im.Name, im.Ref))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Set{}, fmt.Errorf("the offline images are incomplete: %w; run `secprov images build`", err)
	}
	return m.Set, nil
}
