package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/store"
)

// maxProblemBody bounds the error answer read from the admin API.
const maxProblemBody = 64 << 10

func newStoreCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "store",
		Short: "Back up and restore the state store (data_dir/pdp.db)",
		Long: `Back up and restore the bbolt state store:

  pdp store backup FILE --server URL --admin-token-file F   from a running PDP (GET /v1/admin/backup)
  pdp store backup FILE [--config F] [--data-dir D]         from a stopped PDP's data dir
  pdp store restore FILE [--config F] [--data-dir D]        into a stopped PDP's data dir

A backup is a consistent copy taken in one read transaction; it is checked
before it is written to FILE. Restore refuses while a PDP holds the data dir,
checks FILE, keeps the file it replaces as pdp.db.pre-restore and replaces
pdp.db atomically.`,
	}
	var configFile, dataDir, server, credFile string
	var lockTimeout time.Duration
	resolveDir := func(cmd *cobra.Command) (string, error) {
		if dataDir != "" {
			return dataDir, nil
		}
		cfg, err := config.Load(configFile, cmd.Flags(), map[string]string{}, nil)
		if err != nil {
			return "", err
		}
		return cfg.DataDir, nil
	}
	addDirFlags := func(k *cobra.Command) {
		k.Flags().StringVar(&configFile, "config", "", "YAML config file (for data_dir)")
		k.Flags().StringVar(&dataDir, "data-dir", "", "state directory (default: data_dir of the configuration)")
		k.Flags().DurationVar(&lockTimeout, "lock-timeout", time.Second, "how long to wait for the data dir's lock")
	}
	backup := &cobra.Command{
		Use:   "backup FILE",
		Short: "Write a consistent, checked copy of the store to FILE",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			var n int64
			var err error
			if server != "" {
				n, err = backupOnline(ctx, server, credFile, args[0])
			} else {
				var dir string
				if dir, err = resolveDir(cmd); err != nil {
					return err
				}
				n, err = store.BackupDir(ctx, dir, args[0], lockTimeout)
				if err != nil && strings.Contains(err.Error(), "in use") {
					err = fmt.Errorf("%w: a PDP runs on it; take the backup through it with --server and --admin-token-file", err)
				}
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "backup written to %s (%d bytes)\n", args[0], n)
			return nil
		},
	}
	addDirFlags(backup)
	backup.Flags().StringVar(&server, "server", "", "base URL of a running PDP to take the backup from (its admin API)")
	backup.Flags().StringVar(&credFile, "admin-token-file", "", "file holding the admin bearer credential (PDP_ADMIN_TOKEN_FILE)")
	restore := &cobra.Command{
		Use:   "restore FILE",
		Short: "Replace the store of a stopped PDP by the backup FILE",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := resolveDir(cmd)
			if err != nil {
				return err
			}
			if err := store.Restore(cmd.Context(), dir, args[0], lockTimeout); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "restored %s into %s\n", args[0], dir)
			return nil
		},
	}
	addDirFlags(restore)
	c.AddCommand(backup, restore)
	return c
}

// backupOnline takes a backup through a running PDP's admin API and saves
// it, checked, to dst.
func backupOnline(ctx context.Context, server, credFile, dst string) (int64, error) {
	if credFile == "" {
		credFile = os.Getenv("PDP_ADMIN_TOKEN_FILE")
	}
	if credFile == "" {
		return 0, fmt.Errorf("--admin-token-file (or PDP_ADMIN_TOKEN_FILE) is required with --server")
	}
	cred, err := readSecret(credFile)
	if err != nil {
		return 0, fmt.Errorf("admin token file: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(server, "/")+"/v1/admin/backup", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+cred)
	resp, err := (&http.Client{Timeout: 30 * time.Minute}).Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var p struct {
			Title  string `json:"title"`
			Detail string `json:"detail"`
		}
		_ = json.NewDecoder(io.LimitReader(resp.Body, maxProblemBody)).Decode(&p)
		return 0, fmt.Errorf("GET /v1/admin/backup: %d %s: %s", resp.StatusCode, p.Title, p.Detail)
	}
	if resp.ContentLength < 0 {
		return 0, fmt.Errorf("GET /v1/admin/backup: the answer has no Content-Length")
	}
	n, err := store.SaveBackup(ctx, io.LimitReader(resp.Body, resp.ContentLength), dst)
	if err == nil && n != resp.ContentLength {
		_ = os.Remove(dst)
		err = fmt.Errorf("GET /v1/admin/backup: got %d of %d bytes", n, resp.ContentLength)
	}
	return n, err
}
