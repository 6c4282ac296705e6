package io.lambdalake.bench.peer;

import io.lambdalake.bench.peer.Types.GroupKey;
import io.lambdalake.bench.peer.Types.Revenue;
import java.util.HashMap;
import java.util.Map;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.streams.processor.StateStore;
import org.apache.kafka.streams.processor.StateStoreContext;
import org.apache.kafka.streams.state.StoreBuilder;
import org.apache.kafka.streams.state.WindowStore;
import org.apache.kafka.streams.state.internals.CacheFlushListener;
import org.apache.kafka.streams.state.internals.CachedStateStore;

/**
 * A write-back buffer of live aggregate objects in front of the window store:
 * a record updates its window's Revenue in a HashMap instead of a fetch
 * (deserialize) and put (serialize, cache) on the store per record.
 *
 * <p>Exactly-once: before a task commits its transaction, Kafka Streams
 * flushes the caches of its stores in their registration order
 * (ProcessorStateManager.flushCache, the hook its own record cache uses:
 * CachedStateStore). This store is registered before the window store, so
 * its flushCache writes every dirty window into the window store's cache,
 * whose flush right after sends them to the changelog inside the same
 * transaction; no committed offset covers an aggregate the store and its
 * changelog do not hold. (StateStore.commit alone would not do: under
 * exactly_once_v2 it runs only at checkpoints.) Nothing is logged or restored
 * here: after a crash the window store restores from its changelog and the
 * buffer starts empty, as the record cache does; clearCache (a task closed
 * dirty) drops what it holds.
 */
final class AggregateBuffer implements StateStore, CachedStateStore<Object, Object> {
  record Key(long start, GroupKey group) {}

  private final String name;
  private final HashMap<Key, Revenue> dirty = new HashMap<>();
  private WindowStore<GroupKey, Revenue> target;
  private boolean open;

  AggregateBuffer(String name) {
    this.name = name;
  }

  /** The window store this buffer writes back to (the processor sets it in init). */
  void target(WindowStore<GroupKey, Revenue> store) {
    this.target = store;
  }

  /** The live aggregate of one window: from the buffer, else the store, else new. */
  Revenue get(Key k, int lgK) {
    Revenue r = dirty.get(k);
    if (r == null) {
      r = target.fetch(k.group(), k.start());
      if (r == null) {
        r = new Revenue(lgK);
      }
      dirty.put(k, r);
    }
    return r;
  }

  @Override
  public String name() {
    return name;
  }

  @Override
  public void init(StateStoreContext ctx, StateStore root) {
    ctx.register(root, (key, value) -> {}); // nothing to restore
    open = true;
  }

  @Override
  public void flush() {
    if (target == null || dirty.isEmpty()) {
      return;
    }
    for (Map.Entry<Key, Revenue> e : dirty.entrySet()) {
      target.put(e.getKey().group(), e.getValue(), e.getKey().start());
    }
    dirty.clear();
  }

  @Override
  public void commit(Map<TopicPartition, Long> changelogOffsets) {
    flush();
  }

  @Override
  public void flushCache() {
    flush();
  }

  @Override
  public void clearCache() {
    dirty.clear();
  }

  @Override
  public boolean setFlushListener(CacheFlushListener<Object, Object> listener, boolean sendOldValues) {
    return false; // nothing downstream listens
  }

  @Override
  public void close() {
    dirty.clear();
    open = false;
  }

  @Override
  public boolean persistent() {
    return false;
  }

  @Override
  public boolean isOpen() {
    return open;
  }

  static StoreBuilder<AggregateBuffer> builder(String name) {
    return new StoreBuilder<>() {
      @Override public StoreBuilder<AggregateBuffer> withCachingEnabled() { return this; }
      @Override public StoreBuilder<AggregateBuffer> withCachingDisabled() { return this; }
      @Override public StoreBuilder<AggregateBuffer> withLoggingEnabled(Map<String, String> config) { return this; }
      @Override public StoreBuilder<AggregateBuffer> withLoggingDisabled() { return this; }
      @Override public AggregateBuffer build() { return new AggregateBuffer(name); }
      @Override public Map<String, String> logConfig() { return Map.of(); }
      @Override public boolean loggingEnabled() { return false; }
      @Override public String name() { return name; }
    };
  }
}
