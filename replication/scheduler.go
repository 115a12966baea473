package replication

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// work flags a group can be scheduled for; flags set while the group is
// queued or being processed merge, so a busy group is processed once per
// burst of events, never by two workers at a time.
type workFlags uint8

const (
	workTick     workFlags = 1 << iota // advance the Raft clock
	workMessages                       // inbound messages or local responses queued
	workPropose                        // proposals queued
	workReady                          // check for a Ready (e.g. after stepping)
	workMaint                          // periodic upkeep (retention), also when quiesced

	stateQueued     workFlags = 1 << 6
	stateProcessing workFlags = 1 << 7
	workMask                  = workTick | workMessages | workPropose | workReady | workMaint
)

func defaultWorkers() int {
	n := 2 * runtime.GOMAXPROCS(0)
	if n < 4 {
		n = 4
	}
	return n
}

// scheduler runs process(id, flags) for groups on a fixed pool of workers,
// in the manner of CockroachDB's raft scheduler: no goroutine per group,
// one worker per group at a time, events that arrive while a group is busy
// merge into one more pass.
//
// process may return a follow-up (a log sync the pass started) that the
// worker runs after it released the group, so the group can be processed
// by another worker meanwhile. The follow-up learns whether it may run
// inline (block this worker): only when no group waits for a worker and
// fewer than half the workers are busy with follow-ups; otherwise it must
// hand its work elsewhere.
type scheduler struct {
	process   func(id uint64, f workFlags) (after func(inline bool))
	maxInline int
	stopping  atomic.Bool // set by stop: no more inline passes

	mu struct {
		sync.Mutex
		cond    sync.Cond
		state   map[uint64]workFlags
		queue   []uint64 // FIFO of ids with stateQueued
		head    int
		stopped bool
		inline  int // workers running a follow-up inline
	}
	wg sync.WaitGroup
}

func newScheduler(workers int, process func(id uint64, f workFlags) func(inline bool)) *scheduler {
	s := &scheduler{process: process, maxInline: max(1, workers/2)}
	s.mu.state = make(map[uint64]workFlags)
	s.mu.cond.L = &s.mu.Mutex
	s.wg.Add(workers)
	for i := 0; i < workers; i++ {
		go s.worker()
	}
	return s
}

// enqueue schedules group id with flags f.
func (s *scheduler) enqueue(id uint64, f workFlags) {
	s.mu.Lock()
	if s.enqueueLocked(id, f) {
		s.mu.cond.Signal()
	}
	s.mu.Unlock()
}

// enqueueMany schedules every id with flags f.
func (s *scheduler) enqueueMany(ids []uint64, f workFlags) {
	s.mu.Lock()
	n := 0
	for _, id := range ids {
		if s.enqueueLocked(id, f) {
			n++
		}
	}
	if n > 1 {
		s.mu.cond.Broadcast()
	} else if n == 1 {
		s.mu.cond.Signal()
	}
	s.mu.Unlock()
}

// enqueueLocked reports whether id was pushed onto the queue.
func (s *scheduler) enqueueLocked(id uint64, f workFlags) bool {
	if s.mu.stopped {
		return false
	}
	old := s.mu.state[id]
	s.mu.state[id] = old | f
	if old&(stateQueued|stateProcessing) != 0 {
		return false
	}
	s.mu.state[id] |= stateQueued
	s.mu.queue = append(s.mu.queue, id)
	return true
}

func (s *scheduler) popLocked() uint64 {
	id := s.mu.queue[s.mu.head]
	s.mu.head++
	if s.mu.head > 1024 && s.mu.head*2 > len(s.mu.queue) {
		s.mu.queue = append(s.mu.queue[:0:0], s.mu.queue[s.mu.head:]...)
		s.mu.head = 0
	}
	return id
}

func (s *scheduler) worker() {
	defer s.wg.Done()
	s.mu.Lock()
	for {
		for !s.mu.stopped && s.mu.head == len(s.mu.queue) {
			s.mu.cond.Wait()
		}
		if s.mu.stopped {
			s.mu.Unlock()
			return
		}
		id := s.popLocked()
		f := s.mu.state[id]
		s.mu.state[id] = stateProcessing
		s.mu.Unlock()

		after := s.process(id, f&workMask)

		s.mu.Lock()
		f = s.mu.state[id]
		if f&workMask != 0 && !s.mu.stopped {
			s.mu.state[id] = f&workMask | stateQueued
			s.mu.queue = append(s.mu.queue, id)
		} else {
			delete(s.mu.state, id)
		}
		if after != nil {
			inline := !s.mu.stopped && s.mu.head == len(s.mu.queue) && s.mu.inline < s.maxInline
			if inline {
				s.mu.inline++
			}
			s.mu.Unlock()
			after(inline)
			s.mu.Lock()
			if inline {
				s.mu.inline--
			}
		}
	}
}

// stop ends the workers after their current pass and waits for them.
func (s *scheduler) stop() {
	s.stopping.Store(true)
	s.mu.Lock()
	s.mu.stopped = true
	s.mu.cond.Broadcast()
	s.mu.Unlock()
	s.wg.Wait()
}
