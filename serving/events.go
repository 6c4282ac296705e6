package serving

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/lambdalake/lambdalake/internal/stream"
	"github.com/lambdalake/lambdalake/schemas"
)

// eventsParams are the parameters POST /v1/events accepts.
var eventsParams = []string{"schema", "strict"}

// maxRejectedListed bounds the rejected lines an answer lists one by one.
const maxRejectedListed = 1000

type rejectedLine struct {
	Line  int    `json:"line"`
	Error string `json:"error"`
}

type eventsAnswer struct {
	Accepted      int            `json:"accepted"`
	Rejected      []rejectedLine `json:"rejected"`
	RejectedTotal int            `json:"rejected_total"`
	Error         string         `json:"error,omitempty"`
	Param         string         `json:"param,omitempty"`
}

// events serves POST /v1/events?schema=S: an NDJSON body, each line
// decoded with the schema; the valid lines go to the schema's topic, keyed
// by the event id when the schema has one, and the answer comes once Kafka
// acknowledged them (all in-sync replicas).
// strict=true produces nothing unless every line is valid.
func (a *API) events(w http.ResponseWriter, r *http.Request) {
	vals, perr := parseRawQuery(r.URL.RawQuery, eventsRule)
	if perr != nil {
		writeError(w, perr)
		return
	}
	name := vals.Get("schema")
	if name == "" {
		writeError(w, badParam("schema", "schema is required"))
		return
	}
	s := a.schemas[name]
	if s == nil {
		writeError(w, &apiError{Code: http.StatusNotFound, Param: "schema", Msg: fmt.Sprintf("no schema %q", clip(name))})
		return
	}
	strict := false
	if v := vals.Get("strict"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeError(w, badParam("strict", "strict: want true or false, got %q", clip(v)))
			return
		}
		strict = b
	}
	p := principalFrom(r.Context())
	if !schemaBindable(p, s) {
		writeError(w, &apiError{Code: http.StatusForbidden, Param: "schema",
			Msg: fmt.Sprintf("token %s is bound to filters schema %s has no field for", p.name, s.Name)})
		return
	}
	if a.cfg.Producer == nil {
		writeError(w, &apiError{Code: http.StatusServiceUnavailable, Msg: "the Events API has no Kafka producer configured"})
		return
	}
	// A body trickled in byte by byte must not hold its connection and
	// handler for ever: the whole body within http.body_timeout.
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Now().Add(a.cfg.BodyTimeout)) // not supported under httptest: ignored
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.cfg.MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			writeError(w, &apiError{Code: http.StatusRequestEntityTooLarge, Param: "body", Msg: fmt.Sprintf("body larger than http.max_body (%d bytes)", a.cfg.MaxBody)})
		case errors.Is(err, os.ErrDeadlineExceeded):
			w.Header().Set("Connection", "close")
			writeError(w, &apiError{Code: http.StatusRequestTimeout, Param: "body", Msg: fmt.Sprintf("body not received within http.body_timeout (%s)", a.cfg.BodyTimeout)})
		default:
			writeError(w, badParam("body", "reading the body: %v", err))
		}
		return
	}
	// The write deadline ran while the body came in; give the produce
	// and the answer their own time.
	rc.SetWriteDeadline(time.Now().Add(a.cfg.Timeout + 5*time.Second))
	ans := eventsAnswer{Rejected: []rejectedLine{}}
	dec := schemas.NewDecoder(s)
	var row schemas.Row
	var msgs []kafka.Message
	lines := 0
	for n, rest := 1, body; len(rest) > 0; n++ {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue // blank lines (a trailing newline) are not events
		}
		lines++
		reason := ""
		if len(line) > a.cfg.MaxEventBytes {
			// Kafka would refuse the message, and with it the whole
			// request: refuse the line instead, saying why.
			reason = fmt.Sprintf("line is %d bytes, more than the %d bytes one event may have (one Kafka message)", len(line), a.cfg.MaxEventBytes)
		} else if err := dec.Decode(line, &row); err != nil {
			reason = err.Error()
		} else {
			reason = boundField(p, s, &row)
		}
		if reason != "" {
			ans.RejectedTotal++
			if len(ans.Rejected) < maxRejectedListed {
				ans.Rejected = append(ans.Rejected, rejectedLine{Line: n, Error: reason})
			}
			continue
		}
		// Keyed by the event's id (schemas.NAME.id), so every copy of an
		// event, whichever request carried it, lands in one partition.
		msg := kafka.Message{Value: line}
		if key, ok := s.AppendKey(nil, &row); ok {
			msg.Key = key
		}
		msgs = append(msgs, msg)
	}
	a.m.rejected.Add(float64(ans.RejectedTotal))
	switch {
	case lines == 0:
		writeError(w, badParam("body", "empty body: want one JSON event per line (NDJSON)"))
		return
	case len(msgs) == 0 || strict && ans.RejectedTotal > 0:
		ans.Error = fmt.Sprintf("%d of %d lines rejected; nothing was produced", ans.RejectedTotal, lines)
		ans.Param = "body"
		writeJSON(w, http.StatusBadRequest, ans)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.Timeout)
	defer cancel()
	if err := a.writer(s.Topic).WriteMessages(ctx, msgs...); err != nil {
		a.log.Warn("events: produce failed", "schema", s.Name, "topic", s.Topic, "err", stream.Summarize(err))
		writeError(w, &apiError{Code: http.StatusServiceUnavailable, Msg: a.detail(r, "Kafka did not acknowledge the events", stream.Summarize(err))})
		return
	}
	ans.Accepted = len(msgs)
	a.m.accepted.Add(float64(len(msgs)))
	writeJSON(w, http.StatusOK, ans)
}

// writer returns the topic's producer, opened on first use.
func (a *API) writer(topic string) MessageWriter {
	a.writersMu.Lock()
	defer a.writersMu.Unlock()
	w := a.writers[topic]
	if w == nil {
		w = a.cfg.Producer(topic)
		a.writers[topic] = w
	}
	return w
}
