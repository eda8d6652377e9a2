package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/tokenguard/pdp/client"
)

// A Go service without a gateway in front asks the PDP about every request.
func ExampleMiddleware() {
	pdp, err := client.New(client.Options{
		Server:     "http://127.0.0.1:8181",
		Credential: os.Getenv("PDP_GATEWAY_CREDENTIAL"), // decide.auth.credential_file's
		Timeout:    500 * time.Millisecond,
	})
	if err != nil {
		log.Fatal(err)
	}
	guard, err := client.Middleware(pdp, client.MiddlewareOptions{
		BaseURL: "https://api.example.com", // as the service's clients call it
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/accounts/{id}", func(w http.ResponseWriter, r *http.Request) {
		// Only allowed requests get here, with the PDP's upstream headers.
		fmt.Fprintf(w, "accounts of %s\n", r.Header.Get("X-Tokenguard-Subject"))
	})
	log.Fatal(http.ListenAndServe(":8080", guard(mux)))
}

// A background job asks before it uses a token.
func ExampleClient_Decide() {
	pdp, err := client.New(client.Options{Server: "http://127.0.0.1:8181"})
	if err != nil {
		log.Fatal(err)
	}
	token, _ := os.ReadFile("/run/secrets/job-token")
	d, err := pdp.Decide(context.Background(), &client.Request{
		Method:  "POST",
		URL:     "https://api.example.com/v1/reports",
		Headers: map[string][]string{"Authorization": {"Bearer " + strings.TrimSpace(string(token))}},
	})
	var over *client.OverloadedError
	switch {
	case errors.As(err, &over):
		log.Printf("the PDP is overloaded; try again in %s", over.RetryAfter)
		return
	case err != nil: // d.Allow is false: fail closed
		log.Fatalf("no decision: %v", err)
	case !d.Allow:
		log.Fatalf("denied (%d): %s", d.Status, strings.Join(d.Codes(), ", "))
	}
	fmt.Println("allowed as", d.Token.Subject)
}

// A broker plugin asks whether a token may publish to a subject.
func ExampleClient_DecideMessage() {
	pdp, err := client.New(client.Options{Server: "http://127.0.0.1:8181"})
	if err != nil {
		log.Fatal(err)
	}
	d, err := pdp.DecideMessage(context.Background(), &client.Message{
		Broker: "nats", Operation: "publish", Destination: "orders.created", Token: os.Getenv("TOKEN"),
	})
	if err != nil || !d.Allow {
		log.Fatalf("refused: %v %v", err, d.Codes())
	}
}
