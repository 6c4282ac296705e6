package config

import (
	"github.com/redis/go-redis/v9"

	"github.com/lambdalake/lambdalake/lake"
)

// Options returns go-redis options for these settings: one address is a
// single Redis, several are a Redis Cluster; the same code runs on both.
func (r Redis) Options() *redis.UniversalOptions {
	return &redis.UniversalOptions{Addrs: r.Addrs, Username: r.Username, Password: r.Password, DB: r.DB}
}

// Client returns a Redis client for these settings.
func (r Redis) Client() redis.UniversalClient { return redis.NewUniversalClient(r.Options()) }

// StoreConfig returns the lake settings as lake.Open takes them.
func (l Lake) StoreConfig() lake.Config {
	return lake.Config{URL: l.URL, S3: lake.S3Config{
		Endpoint: l.S3.Endpoint, Region: l.S3.Region, PathStyle: l.S3.PathStyle,
		AccessKeyID: l.S3.AccessKeyID, SecretAccessKey: l.S3.SecretAccessKey,
		MaxAttempts: l.S3.MaxAttempts, PartSize: int64(l.S3.PartSize),
	}}
}
