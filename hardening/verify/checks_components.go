package verify

import (
	"context"
	"fmt"

	"secprov.dev/secprov/blueprints"
)

// componentChecks prove the controller manager's and scheduler's flags
// and that they listen on loopback only (SP-KCM-001, SP-SCHED-001).
func componentChecks() []Check {
	return []Check{
		{ID: blueprints.ControllerManagerHardened, Run: func(ctx context.Context, t Target) Outcome {
			return loopbackComponent(ctx, t, blueprints.ControllerManagerHardened, ControllerManager)
		}, Needs: needs(Processes)},
		{ID: blueprints.SchedulerLoopback, Run: func(ctx context.Context, t Target) Outcome {
			return loopbackComponent(ctx, t, blueprints.SchedulerLoopback, Scheduler)
		}, Needs: needs(Processes)},
	}
}

func loopbackComponent(ctx context.Context, t Target, id blueprints.ControlID, name string) Outcome {
	var r findings
	comps, ok := flagCheck(ctx, t, id, []string{name}, &r)
	if c := comps[name]; ok && c != nil {
		if len(c.Listen) == 0 {
			r.errorf("%s has no listening TCP socket that this host can see", name)
		}
		r.ok(listenOnly(&r, name, c, false, "a loopback address", isLoopbackHost)...)
	}
	return r.outcome(fmt.Sprintf("%s runs with the hardened flags and listens on loopback only", name))
}

// loopbackSockets is listenOnly for components that must never listen
// beyond loopback.
func loopbackSockets(ctx context.Context, t Target, r *findings, name string) {
	c, err := t.Component(ctx, name)
	if err != nil {
		r.errorf("read %s's sockets: %v", name, err)
		return
	}
	r.ok(listenOnly(r, name, c, false, "a loopback address", isLoopbackHost)...)
}
