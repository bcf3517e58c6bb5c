// Command adminapi is a small admin API whose every request is recorded in
// a Trail log by the httpaudit middleware.
//
//	go run ./examples/adminapi -data /tmp/adminapi-data
//	curl -X DELETE -H 'X-User: ana' localhost:8081/admin/users/42
//	go run ./cmd/trail --data /tmp/adminapi-data --log adminapi search
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/httpaudit"
)

func main() {
	data := flag.String("data", "./adminapi-data", "Trail data directory")
	addr := flag.String("addr", "127.0.0.1:8081", "listen address")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *data, *addr); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, data, addr string) error {
	var db *trail.DB
	_, err := os.Stat(filepath.Join(data, trail.DatabaseFile))
	if errors.Is(err, fs.ErrNotExist) {
		db, err = trail.Init(ctx, data, trail.Options{})
	} else if err == nil {
		db, err = trail.Open(ctx, data, trail.Options{})
	}
	if err != nil {
		return err
	}
	defer db.Close()
	auditLog, err := db.Log(ctx, "adminapi")
	if errors.Is(err, trail.ErrNotFound) {
		auditLog, err = db.CreateLog(ctx, "adminapi", "")
	}
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.HandleFunc("DELETE /admin/users/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-User") != "ana" {
			http.Error(w, "admins only", http.StatusForbidden)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /admin/users/{id}/password-reset", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "reset link sent")
	})
	mux.HandleFunc("POST /admin/subscriptions/{id}/toggle", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "toggled")
	})

	audit := httpaudit.Middleware(auditLog, httpaudit.Options{
		// A real app reads the signed-in user from its session here.
		Actor: func(r *http.Request) event.Actor {
			if u := r.Header.Get("X-User"); u != "" {
				return event.Actor{ID: u, Type: event.ActorUser}
			}
			return event.Actor{ID: "anonymous", Type: event.ActorAnonymous}
		},
	})
	srv := &http.Server{Addr: addr, Handler: audit(mux), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	log.Printf("admin API on http://%s, audit log %q in %s", addr, auditLog.Name(), data)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
