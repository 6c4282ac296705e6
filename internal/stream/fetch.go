package stream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/lambdalake/lambdalake/internal/backoff"
)

// Fetcher reads one partition from its leader through a kafka-go Conn, one
// fetch at a time, in the caller's goroutine (the speed worker's and the
// compactor's partition loops). kafka.Reader does the same from a goroutine
// of its own and hands every message over a channel, taking two locks per
// FetchMessage; at a few hundred thousand records per second that hand-over
// cost about a seventh of the compactor's CPU. The fetcher keeps the
// reader's recovery rules: reconnect with a back-off on any failure, and a
// partition whose next offset was deleted by retention resumes at its first
// offset.
type Fetcher struct {
	dialer    *kafka.Dialer
	brokers   []string
	topic     string
	partition int
	maxBytes  int
	maxWait   time.Duration
	// onError reports a failed fetch or connection; the fetcher retries
	// by itself.
	onError func(err error)

	conn     *kafka.Conn
	batch    *kafka.Batch
	offset   int64 // next offset to read; kafka.FirstOffset until known
	failures int   // consecutive failures, for the back-off
	n        int   // records returned, for checkEvery
	fetches  int   // fetch requests sent
}

// fetchReadTimeout bounds reading one fetch response, past the broker's
// wait: a dead connection fails instead of hanging.
const fetchReadTimeout = 10 * time.Second

// checkEvery is how many records next returns between looks at its
// context: a wake takes effect within that many records.
const checkEvery = 256

// FetcherConfig says which partition a Fetcher reads and from where.
type FetcherConfig struct {
	Brokers   []string
	Topic     string
	Partition int
	// Offset is the first offset to read; kafka.FirstOffset for the
	// partition's first record.
	Offset int64
	// OnError hears of each failed fetch or connection (the fetcher
	// retries by itself); nil to ignore them.
	OnError func(err error)
}

// NewFetcher returns a fetcher for one partition. It connects on the first
// Next.
func NewFetcher(cfg FetcherConfig) *Fetcher {
	onError := cfg.OnError
	if onError == nil {
		onError = func(error) {}
	}
	brokers, topic, partition, offset := cfg.Brokers, cfg.Topic, cfg.Partition, cfg.Offset
	return &Fetcher{dialer: &kafka.Dialer{Timeout: 10 * time.Second, DualStack: true}, brokers: brokers,
		topic: topic, partition: partition, maxBytes: 16 << 20, maxWait: 250 * time.Millisecond,
		offset: offset, onError: onError}
}

// Next returns the partition's next record, waiting for one until ctx ends;
// then it returns ctx's error. Failures are retried, never returned.
func (f *Fetcher) Next(ctx context.Context) (kafka.Message, error) {
	var m kafka.Message
	err := f.next(ctx, func(b *kafka.Batch) (int64, error) {
		var err error
		m, err = b.ReadMessage()
		return m.Offset, err
	})
	return m, err
}

// Value is a record as NextValue reads it: its offset, its value, and the
// partition's high-water mark when it was fetched.
type Value struct {
	Offset, HighWaterMark int64
	Bytes                 []byte
}

// NextValue is Next for a consumer that needs only a record's offset and
// value (the speed worker): the value is read into buf's storage, grown when
// too small, instead of a new allocation per record, so it is valid only
// until the next call. Pass the last Value's Bytes[:0] as buf.
func (f *Fetcher) NextValue(ctx context.Context, buf []byte) (Value, error) {
	var v Value
	err := f.next(ctx, func(b *kafka.Batch) (int64, error) {
		for {
			n, err := b.Read(buf[:cap(buf)])
			if errors.Is(err, io.ErrShortBuffer) {
				// Read does not say how large the value is: double, and
				// read it again (the batch is spent).
				buf = make([]byte, 0, max(2*cap(buf), n, 4096))
				return 0, err
			}
			if err != nil {
				return 0, err
			}
			off := b.Offset() - 1
			// A fetch may start with records before the offset asked for
			// (the broker sends whole record batches); ReadMessage skips
			// them itself, Read does not.
			if off < f.offset {
				continue
			}
			v = Value{Offset: off, HighWaterMark: b.HighWaterMark(), Bytes: buf[:n]}
			return off, nil
		}
	})
	return v, err
}

// next reads the partition's next record with read, fetching and retrying
// as needed, until ctx ends.
func (f *Fetcher) next(ctx context.Context, read func(*kafka.Batch) (int64, error)) error {
	for {
		if f.batch != nil {
			if f.n++; f.n%checkEvery == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			off, err := read(f.batch)
			if err == nil {
				f.offset = off + 1
				f.failures = 0
				return nil
			}
			if errors.Is(err, io.ErrShortBuffer) {
				// The value did not fit: fetch it again into a larger buffer.
				f.batch.Close()
				f.batch = nil
				continue
			}
			// The batch may end past its last record (compacted records,
			// transaction markers): go on from there, as kafka.Reader does.
			f.offset = max(f.offset, f.batch.Offset())
			// Close reports nil at the batch's normal end.
			err = f.batch.Close()
			f.batch = nil
			if err != nil && !errors.Is(err, kafka.RequestTimedOut) {
				f.fail(ctx, err)
				continue
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := f.fetch(ctx); err != nil {
			f.fail(ctx, err)
		}
	}
}

// fetch starts the next batch, connecting first if needed.
func (f *Fetcher) fetch(ctx context.Context) error {
	if f.conn == nil {
		if err := f.connect(ctx); err != nil {
			return err
		}
	}
	// No range check here (it costs a request): a fetch out of range
	// fails with OffsetOutOfRange, which fail handles.
	if _, err := f.conn.Seek(f.offset, kafka.SeekAbsolute|kafka.SeekDontCheck); err != nil {
		return fmt.Errorf("seek %d: %w", f.offset, err)
	}
	f.fetches++
	conn := f.conn
	conn.SetReadDeadline(time.Now().Add(f.maxWait + fetchReadTimeout))
	// The broker holds an empty fetch up to maxWait: a cancel cuts that
	// wait short through the deadline (the connection is then redialed).
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	b := conn.ReadBatchWith(kafka.ReadBatchConfig{MinBytes: 1, MaxBytes: f.maxBytes, MaxWait: f.maxWait})
	if !stop() {
		b.Close()
		f.closeConn()
		return ctx.Err()
	}
	if err := b.Err(); err != nil {
		b.Close()
		if errors.Is(err, kafka.RequestTimedOut) {
			return nil // kafka-go's word for a fetch that found no records in time
		}
		return err
	}
	f.batch = b
	return nil
}

// connect dials the partition's leader and settles the start offset.
func (f *Fetcher) connect(ctx context.Context) error {
	var errs []error
	for _, broker := range f.brokers {
		conn, err := f.dialer.DialLeader(ctx, "tcp", broker, f.topic, f.partition)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		conn.SetDeadline(time.Now().Add(fetchReadTimeout))
		first, _, err := conn.ReadOffsets()
		conn.SetDeadline(time.Time{})
		if err != nil {
			conn.Close()
			return fmt.Errorf("read offsets: %w", err)
		}
		if f.offset < first {
			if f.offset >= 0 {
				f.onError(fmt.Errorf("offset %d was deleted by retention; resuming at the first offset %d", f.offset, first))
			}
			f.offset = first
		}
		f.conn = conn
		return nil
	}
	return fmt.Errorf("dial leader: %w", errors.Join(errs...))
}

// fail handles a failed connection, fetch or read: the connection is
// dropped (the next fetch redials and resumes at f.offset), and, unless the
// failure was an offset the broker had not yet or no longer had, the
// fetcher backs off.
func (f *Fetcher) fail(ctx context.Context, err error) {
	if ctx.Err() != nil {
		f.closeConn()
		return
	}
	if errors.Is(err, kafka.OffsetOutOfRange) && f.conn != nil {
		f.conn.SetDeadline(time.Now().Add(fetchReadTimeout))
		first, last, oerr := f.conn.ReadOffsets()
		f.conn.SetDeadline(time.Time{})
		switch {
		case oerr != nil:
		case f.offset < first:
			f.onError(fmt.Errorf("offset %d was deleted by retention; resuming at the first offset %d", f.offset, first))
			f.offset = first
			return
		case f.offset < last:
			return // records arrived meanwhile
		}
	}
	f.closeConn()
	f.failures++
	f.onError(err)
	backoff.Sleep(ctx, backoff.Default.Delay(f.failures-1))
}

func (f *Fetcher) closeConn() {
	if f.batch != nil {
		f.batch.Close()
		f.batch = nil
	}
	if f.conn != nil {
		f.conn.Close()
		f.conn = nil
	}
}

// SetOffset makes the next record the one at offset.
func (f *Fetcher) SetOffset(offset int64) {
	if f.batch != nil {
		f.batch.Close()
		f.batch = nil
	}
	f.offset = offset
}

// Fetches is how many fetch requests the fetcher has sent.
func (f *Fetcher) Fetches() int { return f.fetches }

// Close releases the connection.
func (f *Fetcher) Close() { f.closeConn() }
