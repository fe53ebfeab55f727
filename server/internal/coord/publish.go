package coord

// publish stamps e with the run and the time and hands it to the run's
// subscribers.
func (r *Run) publish(e Event) {
	e.Run = r.sp.id
	if e.Time.IsZero() {
		e.Time = r.c.now()
	}
	r.hub.publish(e)
}

// publishClient announces cl's state.
func (r *Run) publishClient(cl *client) {
	v := r.clientView(cl)
	r.publish(Event{Type: EvClient, Client: &v})
}

// publishStatus refreshes the view and announces it as the run's status
// (after the status changed: the view must already say so, in the event
// and for a caller the loop answers next, such as Stop's), to the run's
// subscribers and to the coordinator's lifecycle stream.
func (r *Run) publishStatus() {
	r.publishView()
	v := r.View()
	e := Event{Type: EvRunStatus, Run: r.sp.id, Time: r.c.now(), Status: &v}
	r.hub.publish(e)
	r.c.lifecycle.publish(e)
}

// publishView refreshes the summary View returns (loop goroutine only). It
// does not walk the clients, so it is cheap after every event.
func (r *Run) publishView() {
	st, sp := r.st, r.sp
	v := &RunView{ID: sp.id, Name: sp.cfg.Name, Status: st.status, Config: sp.cfg, Params: sp.numParams,
		CreatedAt: sp.created, Round: st.roundNo, Connected: st.online, Known: len(st.clients), TestAccuracy: st.lastAcc}
	if st.current != nil {
		v.ModelVersion = st.current.v
	}
	now := r.c.now()
	switch {
	case !st.active():
		v.Phase = st.status
	case st.round != nil:
		v.Open = st.round.view(now)
		v.Phase = "training"
	case st.closing != nil:
		v.Phase = "aggregating"
	case st.online < sp.cfg.MinClients || (st.roundNo == 0 && st.online < sp.cfg.StartClients):
		v.Phase = "waiting for clients"
	default:
		v.Phase = "starting a round"
	}
	r.view.Store(v)
}

// snapshot returns the view with every client's state.
func (r *Run) snapshot() RunView {
	r.publishView()
	v := r.View()
	for _, id := range r.st.bySlice {
		if cl := r.st.clients[id]; id != "" && cl != nil {
			v.Clients = append(v.Clients, r.clientView(cl))
		}
	}
	return v
}

func (r *Run) clientView(cl *client) ClientView {
	v := ClientView{ID: cl.id, Slice: cl.slice, Samples: len(r.sp.parts[cl.slice]), LabelCounts: r.sp.labels[cl.slice], Kind: cl.kind, Device: cl.device, Connected: cl.peer != nil,
		FirstSeen: cl.firstSeen, LastSeen: cl.lastSeen, SamplesPerS: cl.speed, Progress: cl.progress,
		Updates: cl.updates, Accepted: cl.accepted, BytesUp: cl.bytesUp, BytesDown: cl.bytesDown + cl.down.Load(),
		State: ClientOffline, Missed: cl.missed, SkipUntil: cl.skipUntil, Profile: cl.profile}
	if t := cl.task; t != nil {
		v.TaskRound, v.TaskVersion, v.TaskAt = t.round, t.version, t.sent
	}
	if cl.peer != nil {
		v.State = ClientIdle
		if r.sp.cfg.Async() {
			switch {
			case cl.task != nil:
				v.State = ClientTraining
			case cl.storing:
				v.State = ClientAnswered
			}
		} else if o := r.st.round; o != nil {
			if s := o.seat(cl.id); s != nil {
				v.State = ClientTraining
				if s.state == seatStoring || s.state == seatDone {
					v.State = ClientAnswered
				}
			}
		}
	}
	return v
}
