package replication

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// raftLogger adapts slog to raft's Logger. Raft's info chatter (elections,
// term changes) goes to debug level, and so does its warning that a group
// cannot campaign before its configuration entries apply: a new group is
// bootstrapped with them, and whoever asked for the campaign retries.
type raftLogger struct{ l *slog.Logger }

func (r *raftLogger) log(level slog.Level, args []any) {
	if r.l.Enabled(context.Background(), level) {
		r.l.Log(context.Background(), level, "raft: "+fmt.Sprint(args...))
	}
}

func (r *raftLogger) logf(level slog.Level, format string, args []any) {
	if r.l.Enabled(context.Background(), level) {
		r.l.Log(context.Background(), level, "raft: "+fmt.Sprintf(format, args...))
	}
}

func (r *raftLogger) Debug(v ...any)            { r.log(slog.LevelDebug, v) }
func (r *raftLogger) Debugf(f string, v ...any) { r.logf(slog.LevelDebug, f, v) }
func (r *raftLogger) Info(v ...any)             { r.log(slog.LevelDebug, v) }
func (r *raftLogger) Infof(f string, v ...any)  { r.logf(slog.LevelDebug, f, v) }
func (r *raftLogger) Warning(v ...any)          { r.log(slog.LevelWarn, v) }
func (r *raftLogger) Warningf(f string, v ...any) {
	level := slog.LevelWarn
	if strings.Contains(f, "cannot campaign at term") {
		level = slog.LevelDebug
	}
	r.logf(level, f, v)
}
func (r *raftLogger) Error(v ...any)            { r.log(slog.LevelError, v) }
func (r *raftLogger) Errorf(f string, v ...any) { r.logf(slog.LevelError, f, v) }
func (r *raftLogger) Fatal(v ...any)            { r.log(slog.LevelError, v); panic(fmt.Sprint(v...)) }
func (r *raftLogger) Fatalf(f string, v ...any) {
	r.logf(slog.LevelError, f, v)
	panic(fmt.Sprintf(f, v...))
}
func (r *raftLogger) Panic(v ...any) { r.log(slog.LevelError, v); panic(fmt.Sprint(v...)) }
func (r *raftLogger) Panicf(f string, v ...any) {
	r.logf(slog.LevelError, f, v)
	panic(fmt.Sprintf(f, v...))
}
