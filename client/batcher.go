package client

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/event"
)

// ErrBufferFull is returned by Batcher.Append when the buffer is full and
// the batcher was made not to block.
var ErrBufferFull = errors.New("trail batcher buffer full; event not queued")

// ErrClosed is returned by a closed Batcher.
var ErrClosed = errors.New("trail batcher closed")

// BatcherOptions tune a Batcher.
type BatcherOptions struct {
	// MaxBatch is the most events sent in one request. Default 500.
	MaxBatch int
	// MaxDelay is how long an event may wait for others to join its
	// request. Default 200 ms.
	MaxDelay time.Duration
	// Buffer bounds the events queued and not yet sent. Default 10,000.
	Buffer int
	// NoBlock makes Append return ErrBufferFull instead of waiting when
	// the buffer is full. Either way nothing is dropped silently.
	NoBlock bool
	// OnError is called (from the sending goroutine) with events that
	// could not be stored after the client's retries, and why. Default:
	// an error logged with Logger, saying how many events were lost.
	OnError func(events []event.Event, err error)
	// Logger receives the failures when OnError is nil. Default:
	// slog.Default().
	Logger *slog.Logger
}

// Batcher sends events in the background, many per request. Append only
// queues; Flush waits for what was queued before it; Close flushes and
// stops. The buffer is bounded, and a full buffer blocks or fails Append
// (NoBlock): events are never dropped silently.
type Batcher struct {
	c     *Client
	opts  BatcherOptions
	queue chan item
	done  chan struct{}

	// mu is held for reading while an Append sends to queue, and for
	// writing when Close closes it.
	mu     sync.RWMutex
	closed bool
}

// item is an event to send, or a flush marker: everything queued before
// it has been sent when the marker reaches the sender, which replies with
// the first failure since the previous marker.
type item struct {
	e     event.Event
	flush chan error
}

// NewBatcher starts a batcher sending through c.
func (c *Client) NewBatcher(opts BatcherOptions) *Batcher {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 500
	}
	if opts.MaxDelay <= 0 {
		opts.MaxDelay = 200 * time.Millisecond
	}
	if opts.Buffer <= 0 {
		opts.Buffer = 10000
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	b := &Batcher{c: c, opts: opts, queue: make(chan item, opts.Buffer), done: make(chan struct{})}
	go b.run()
	return b
}

// Append queues e. The returned Receipt is zero: the event is stored
// later (Flush waits for it). It makes a Batcher an httpaudit.Appender.
func (b *Batcher) Append(ctx context.Context, e event.Event) (api.Receipt, error) {
	return api.Receipt{}, b.put(ctx, item{e: e}, b.opts.NoBlock)
}

func (b *Batcher) put(ctx context.Context, it item, noBlock bool) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return ErrClosed
	}
	if noBlock {
		select {
		case b.queue <- it:
			return nil
		default:
			return ErrBufferFull
		}
	}
	select {
	case b.queue <- it:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Flush waits until every event queued before the call has been stored or
// has failed, and returns the first failure since the previous Flush.
func (b *Batcher) Flush(ctx context.Context) error {
	reply := make(chan error, 1)
	if err := b.put(ctx, item{flush: reply}, false); err != nil {
		return err
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close sends what is queued, stops, and returns the first failure since
// the last Flush. Appends after Close fail with ErrClosed. If ctx ends
// first, Close returns its error, and the events still queued are sent in
// the background (OnError hears of those that fail). Closing again
// returns nil once the first Close has stopped the batcher.
func (b *Batcher) Close(ctx context.Context) error {
	err := b.Flush(ctx)
	if errors.Is(err, ErrClosed) {
		err = nil
	}
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.queue)
	}
	b.mu.Unlock()
	select {
	case <-b.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *Batcher) run() {
	defer close(b.done)
	var failed error // first failure since the last flush marker
	batch := make([]event.Event, 0, b.opts.MaxBatch)
	send := func() {
		if len(batch) > 0 {
			if err := b.send(batch); err != nil && failed == nil {
				failed = err
			}
			batch = batch[:0]
		}
	}
	var timer <-chan time.Time
	for {
		select {
		case it, ok := <-b.queue:
			if !ok {
				send()
				return
			}
			if it.flush != nil {
				send()
				it.flush <- failed
				failed, timer = nil, nil
				continue
			}
			batch = append(batch, it.e)
			if len(batch) == 1 {
				timer = time.After(b.opts.MaxDelay)
			}
			if len(batch) >= b.opts.MaxBatch {
				send()
				timer = nil
			}
		case <-timer:
			send()
			timer = nil
		}
	}
}

// send stores a batch and returns the first failure. The client retries
// transient failures with the same idempotency key; a batch rejected
// outright (a bad event) is sent again event by event, so that one bad
// event fails alone, and one too large for a request (413) in halves.
func (b *Batcher) send(batch []event.Event) error {
	ctx := context.Background()
	_, err := b.c.Append(ctx, batch...)
	var apiErr *APIError
	if err != nil && len(batch) > 1 && errors.As(err, &apiErr) && apiErr.Status == http.StatusRequestEntityTooLarge {
		half := len(batch) / 2
		return cmp.Or(b.send(batch[:half]), b.send(batch[half:]))
	}
	if err != nil && len(batch) > 1 && errors.As(err, &apiErr) && apiErr.Status == 400 {
		var first error
		for _, e := range batch {
			if _, err := b.c.Append(ctx, e); err != nil {
				b.report([]event.Event{e}, err)
				first = cmp.Or(first, err)
			}
		}
		return first
	}
	if err != nil {
		b.report(batch, err)
	}
	return err
}

func (b *Batcher) report(events []event.Event, err error) {
	if b.opts.OnError != nil {
		b.opts.OnError(append([]event.Event(nil), events...), err)
		return
	}
	b.opts.Logger.Error("trail batcher: events not stored", "events", len(events), "first_action", events[0].Action, "err", err)
}
