package main

import (
	"fmt"

	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/httpapi"
	"github.com/tokenguard/pdp/internal/token"
)

// rabbitMQOptions are the RabbitMQ auth backend's endpoints of
// messaging.rabbitmq, or nil when it is off.
func rabbitMQOptions(c config.RabbitMQ, verifier *token.Verifier) (*httpapi.RabbitMQ, error) {
	if !c.Enabled {
		return nil, nil
	}
	cred, err := readSecret(c.CredentialFile)
	if err == nil {
		err = httpapi.ParseRabbitMQCredential(cred)
	}
	if err != nil {
		return nil, fmt.Errorf("messaging.rabbitmq.credential_file: %w", err)
	}
	return &httpapi.RabbitMQ{Credential: cred, Tokens: verifier, Tags: c.Tags,
		MaxTokens: c.MaxTokens, MaxTokensPerSubject: c.MaxTokensPerSubject, MaxTokenAge: c.MaxTokenAge}, nil
}
