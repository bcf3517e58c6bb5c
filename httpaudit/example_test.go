package httpaudit_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/api"
	"github.com/trail-audit/trail/event"
	"github.com/trail-audit/trail/httpaudit"
)

// An admin API records every request to its routes in an embedded log: the
// route names the action and the target, the status code the outcome, and a
// hook reads the actor from the request (here a header; in an app, its
// session).
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "httpaudit-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	db, err := trail.Init(ctx, dir, trail.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	auditLog, err := db.CreateLog(ctx, "admin", "")
	if err != nil {
		log.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("DELETE /admin/users/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-User") != "root" {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	handler := httpaudit.Middleware(auditLog, httpaudit.Options{
		Actor: func(r *http.Request) event.Actor {
			return event.Actor{ID: r.Header.Get("X-User"), Type: event.ActorUser}
		},
	})(mux)

	for _, user := range []string{"root", "intern"} {
		req := httptest.NewRequest("DELETE", "/admin/users/42", nil)
		req.Header.Set("X-User", user)
		handler.ServeHTTP(httptest.NewRecorder(), req)
	}

	page, err := auditLog.Search(ctx, api.Query{Action: "admin.*"})
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range page.Events {
		fmt.Println(e.Actor.ID, e.Action, e.Targets[0].Type, e.Targets[0].ID, e.Outcome)
	}
	// Output:
	// intern admin.users.delete users 42 denied
	// root admin.users.delete users 42 success
}
