package main

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokenguard/pdp/internal/config"
)

// rabbitMQCredential is the HTTP Basic credential the broker calls the
// RabbitMQ endpoints with, as the auth_http URLs carry it.
const rabbitMQCredential = "rabbitmq:1b7e0c9a4f2d4e6a8c0b2d4f6a8c0e1f"

// withRabbitMQ turns on messaging.rabbitmq with rabbitMQCredential.
func withRabbitMQ(t testing.TB) func(*config.Config) {
	file := filepath.Join(t.TempDir(), "rabbitmq-credential")
	if err := os.WriteFile(file, []byte(rabbitMQCredential+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return func(c *config.Config) {
		c.Messaging.RabbitMQ.Enabled = true
		c.Messaging.RabbitMQ.CredentialFile = file
	}
}

// rabbitMQAuth is the Authorization header RabbitMQ sends.
func rabbitMQAuth() string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(rabbitMQCredential))
}

func TestServeRefusesAnUnusableRabbitMQCredential(t *testing.T) {
	for name, cred := range map[string]string{
		"fail/needs escaping in a URL": "rabbitmq:1b7e0c9a4f2d4e6a8c0b2d4f6a8c0e1f/",
		"fail/short password":          "rabbitmq:secret",
		"fail/no username":             "1b7e0c9a4f2d4e6a8c0b2d4f6a8c0e1f",
	} {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "cred")
			if err := os.WriteFile(file, []byte(cred), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := rabbitMQOptions(config.RabbitMQ{Enabled: true, CredentialFile: file}, nil)
			if err == nil || !strings.Contains(err.Error(), "messaging.rabbitmq.credential_file") {
				t.Fatalf("err = %v, want one naming messaging.rabbitmq.credential_file", err)
			}
		})
	}
}

// rabbitMQPolicyData is the shipped data.json with RabbitMQ destinations:
// publishing to amq.topic with the routing keys orders.* needs
// orders:write, publishing to amq.direct payments:write; every role of
// the environment may hold both.
func rabbitMQPolicyData(t testing.TB) string {
	t.Helper()
	raw, err := os.ReadFile("../../rego/data.json")
	if err != nil {
		t.Fatal(err)
	}
	var data map[string]any
	if err := json.Unmarshal(raw, &data); err != nil {
		t.Fatal(err)
	}
	pdp := data["pdp"].(map[string]any)
	dest := func(name, d string, ops []string, scope string) map[string]any {
		return map[string]any{"name": name, "broker": "rabbitmq", "destination": d, "operations": ops,
			"audience": testAudience, "scopes": []string{scope}}
	}
	pdp["destinations"] = []any{
		dest("order events exchange", "amq.topic", []string{"publish"}, "orders:write"),
		dest("order events", "orders.*", []string{"publish", "subscribe"}, "orders:write"),
		dest("payments exchange", "amq.direct", []string{"publish"}, "payments:write"),
	}
	pdp["unknown_destinations"] = "deny"
	for _, env := range pdp["environments"].(map[string]any) {
		for role, scopes := range env.(map[string]any)["roles"].(map[string]any) {
			env.(map[string]any)["roles"].(map[string]any)[role] = append(scopes.([]any), "orders:write", "payments:write")
		}
	}
	b, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
