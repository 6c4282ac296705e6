package io.lambdalake.bench.peer;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import io.lambdalake.bench.peer.Types.GroupKey;
import io.lambdalake.bench.peer.Types.Order;
import io.lambdalake.bench.peer.Types.Revenue;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;
import java.util.List;
import org.apache.datasketches.hll.Union;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.MetricName;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StoreQueryParameters;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Named;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.kstream.Windowed;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueIterator;
import org.apache.kafka.streams.state.QueryableStoreTypes;
import org.apache.kafka.streams.state.ReadOnlyWindowStore;
import org.apache.kafka.streams.state.StoreBuilder;
import org.apache.kafka.streams.state.Stores;
import org.apache.kafka.streams.state.WindowBytesStoreSupplier;
import org.apache.kafka.streams.state.WindowStore;

/**
 * The Kafka Streams peer of lambdalake's speed layer (bench speed, issue
 * 19.1): the revenue view of lambdalake.yaml — 1-minute tumbling windows by
 * event time with 5 minutes grace, grouped by tenant and country, count, sum,
 * min and max of amount and uniq(user_id) as a DataSketches HLL — with
 * exactly_once_v2, materialized in a window store that interactive queries
 * read over HTTP. See bench/peer/README.md for the design and the settings
 * measured.
 *
 * <p>Topologies ({@code --topology}): "local" (default) parses and
 * aggregates each source partition in its own task (LocalAggregate, with the
 * AggregateBuffer in front of the window store unless {@code --buffer=false});
 * "repartition" is the textbook DSL (re-key, repartition, windowed
 * aggregate), kept to measure it.
 *
 * <p>Throughput runs from the first record read until the results of
 * {@code --expect} records are in the store and committed with their offsets.
 *
 * <p>HTTP (127.0.0.1, {@code --port}): GET /status (counters, JSON), GET
 * /windows (every window through interactive queries, tasks merged, NDJSON).
 */
public final class RevenuePeer {
  static final String STORE = "revenue";
  static final String BUFFER = "revenue-buffer";
  static final String REPARTITION = "by-tenant-country";

  static final LongAdder READ = new LongAdder();
  static final LongAdder MALFORMED = new LongAdder();
  static final LongAdder AGGREGATED = new LongAdder();
  static final AtomicLong FIRST_READ = new AtomicLong();
  static volatile long lastAggregate;

  private RevenuePeer() {}

  /** Parses each record once, re-keys it by its dimensions, re-stamps it with its event time. */
  static final class Parse implements Processor<byte[], byte[], GroupKey, Order> {
    private final OrderParser parser = new OrderParser();
    private final OrderParser.Parsed row = new OrderParser.Parsed();
    private ProcessorContext<GroupKey, Order> ctx;

    @Override
    public void init(ProcessorContext<GroupKey, Order> ctx) {
      this.ctx = ctx;
    }

    @Override
    public void process(Record<byte[], byte[]> r) {
      if (FIRST_READ.get() == 0) {
        FIRST_READ.compareAndSet(0, System.nanoTime());
      }
      READ.increment();
      if (!parser.parse(r.value(), row)) {
        MALFORMED.increment();
        return;
      }
      ctx.forward(
          r.withKey(new GroupKey(row.tenant, row.country))
              .withValue(new Order(row.amount, Types.hash(row.userId)))
              .withTimestamp(row.tsMillis));
    }
  }

  /**
   * The "local" topology's one processor: parse, then the windowed aggregate
   * of KStreamWindowAggregate (tumbling 1m windows, drop a record once its
   * window end + grace is not after the highest event time this task has
   * seen), into this partition's own window store. No repartition: each
   * task aggregates the records of its source partition; interactive
   * queries merge the tasks' partial windows (the metrics are monoids).
   */
  static final class LocalAggregate implements Processor<byte[], byte[], Void, Void> {
    private final OrderParser parser = new OrderParser();
    private final OrderParser.Parsed row = new OrderParser.Parsed();
    private final int lgK;
    private final boolean buffered;
    private WindowStore<GroupKey, Revenue> store;
    private AggregateBuffer buffer;
    private long observed = Long.MIN_VALUE;

    LocalAggregate(int lgK, boolean buffered) {
      this.lgK = lgK;
      this.buffered = buffered;
    }

    @Override
    public void init(ProcessorContext<Void, Void> ctx) {
      store = ctx.getStateStore(STORE);
      if (buffered) {
        buffer = ctx.getStateStore(BUFFER);
        buffer.target(store);
      }
    }

    @Override
    public void process(Record<byte[], byte[]> r) {
      if (FIRST_READ.get() == 0) {
        FIRST_READ.compareAndSet(0, System.nanoTime());
      }
      READ.increment();
      if (!parser.parse(r.value(), row)) {
        MALFORMED.increment();
        return;
      }
      long ts = row.tsMillis;
      observed = Math.max(observed, ts);
      long start = Math.floorDiv(ts, SIZE_MS) * SIZE_MS;
      if (start + SIZE_MS + GRACE_MS <= observed) {
        LATE.increment();
        return;
      }
      GroupKey k = new GroupKey(row.tenant, row.country);
      Order o = new Order(row.amount, Types.hash(row.userId));
      if (buffered) {
        buffer.get(new AggregateBuffer.Key(start, k), lgK).add(o);
      } else {
        Revenue agg = store.fetch(k, start);
        if (agg == null) {
          agg = new Revenue(lgK);
        }
        store.put(k, agg.add(o), start);
      }
      AGGREGATED.increment();
      lastAggregate = System.nanoTime();
    }
  }

  static final long SIZE_MS = 60_000, GRACE_MS = 300_000;
  static final LongAdder LATE = new LongAdder();

  public static void main(String[] argv) throws Exception {
    Map<String, String> a = args(argv);
    String topic = required(a, "topic");
    long expect = Long.parseLong(required(a, "expect"));
    String appId = a.getOrDefault("app-id", "bench-peer-" + Long.toString(System.nanoTime(), 36));
    int threads = Integer.parseInt(a.getOrDefault("threads", String.valueOf(Runtime.getRuntime().availableProcessors())));
    long cacheBytes = Long.parseLong(a.getOrDefault("cache-bytes", String.valueOf(64L << 20)));
    long commitMs = Long.parseLong(a.getOrDefault("commit-ms", "100"));
    String guarantee = a.getOrDefault("guarantee", StreamsConfig.EXACTLY_ONCE_V2);
    String storeKind = a.getOrDefault("store", "memory");
    int lgK = Integer.parseInt(a.getOrDefault("hll-lgk", "12"));
    int maxPoll = Integer.parseInt(a.getOrDefault("max-poll-records", "2000"));
    long idleMs = Long.parseLong(a.getOrDefault("idle-ms", "30000"));
    Path stateDir = Files.createTempDirectory("bench-peer-state-");

    Properties p = new Properties();
    p.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
    p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, a.getOrDefault("bootstrap", "127.0.0.1:9092"));
    p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, guarantee);
    p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, threads);
    p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, cacheBytes);
    p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, commitMs);
    p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir.toString());
    p.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
    p.put("processing.exception.handler.global.enabled", true); // silences a 4.x deprecation warning
    p.put(StreamsConfig.consumerPrefix(ConsumerConfig.MAX_POLL_RECORDS_CONFIG), maxPoll);
    p.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
    p.put(StreamsConfig.consumerPrefix(ConsumerConfig.FETCH_MIN_BYTES_CONFIG), 64 << 10);
    p.put(StreamsConfig.consumerPrefix(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG), 50);
    // Repartition records are 16+~20 bytes: larger batches, a short linger.
    p.put(StreamsConfig.producerPrefix(ProducerConfig.BATCH_SIZE_CONFIG), 256 << 10);
    p.put(StreamsConfig.producerPrefix(ProducerConfig.LINGER_MS_CONFIG), Integer.parseInt(a.getOrDefault("linger-ms", "10")));
    p.put(StreamsConfig.producerPrefix(ProducerConfig.COMPRESSION_TYPE_CONFIG), a.getOrDefault("compression", "none"));

    String shape = a.getOrDefault("topology", "local");
    boolean buffered = Boolean.parseBoolean(a.getOrDefault("buffer", "true"));
    Topology topology =
        "repartition".equals(shape)
            ? repartitionTopology(topic, lgK, storeKind, cacheBytes > 0)
            : localTopology(topic, lgK, storeKind, cacheBytes > 0, buffered);
    System.err.println(topology.describe());
    KafkaStreams streams = new KafkaStreams(topology, p);
    CountDownLatch running = new CountDownLatch(1);
    streams.setStateListener(
        (now, before) -> {
          if (now == KafkaStreams.State.RUNNING) running.countDown();
          if (now == KafkaStreams.State.ERROR) {
            System.err.println("peer: streams in ERROR");
            System.exit(2);
          }
        });
    CountDownLatch stop = new CountDownLatch(1);
    Runtime.getRuntime().addShutdownHook(new Thread(stop::countDown));
    HttpServer http = serve(streams, Integer.parseInt(a.getOrDefault("port", "0")));
    System.out.println("peer: listening on 127.0.0.1:" + http.getAddress().getPort() + " app " + appId);
    System.out.printf(Locale.ROOT, "peer: topology=%s buffer=%s threads=%d cache_bytes=%d commit_ms=%d guarantee=%s store=%s hll_lgk=%d max_poll=%d%n",
        shape, buffered && !"repartition".equals(shape), threads, cacheBytes, commitMs, guarantee, storeKind, lgK, maxPoll);
    System.out.flush();
    streams.start();

    // Wait until the store holds every expected record, or nothing moves.
    long seen = -1, lastChange = System.nanoTime();
    while (AGGREGATED.sum() < expect) {
      if (stop.getCount() == 0) break;
      long n = AGGREGATED.sum() + READ.sum();
      if (n != seen) {
        seen = n;
        lastChange = System.nanoTime();
      } else if (FIRST_READ.get() != 0 && System.nanoTime() - lastChange > idleMs * 1_000_000L) {
        System.out.println("peer: no progress for " + idleMs + " ms; stopping short of --expect");
        break;
      }
      Thread.sleep(2);
    }
    long end = lastAggregate;
    // Durable: the transaction holding the last aggregate has committed the
    // source offsets with it (exactly_once_v2), i.e. the group's committed
    // offsets reached the topic's end.
    long committed = waitCommitted(p, appId, topic, 30_000);
    long first = FIRST_READ.get();
    double el = (end - first) / 1e9, elCommitted = (committed - first) / 1e9;
    long read = READ.sum();
    System.out.printf(Locale.ROOT,
        "peer: done read=%d malformed=%d aggregated=%d dropped=%.0f elapsed_s=%.3f eps=%.0f committed_s=%.3f committed_eps=%.0f%n",
        read, MALFORMED.sum(), AGGREGATED.sum(), LATE.sum() + metric(streams, "dropped-records-total", "stream-task-metrics"),
        el, read / el, elCommitted, read / elCommitted);
    System.out.flush();
    stop.await();
    http.stop(0);
    streams.close(Duration.ofSeconds(10));
    streams.cleanUp();
  }

  static final Duration RETENTION = Duration.ofHours(48); // the view's hot_retention

  static WindowBytesStoreSupplier storeSupplier(String kind) {
    Duration size = Duration.ofMillis(SIZE_MS);
    return "rocksdb".equals(kind)
        ? Stores.persistentWindowStore(STORE, RETENTION, size, false)
        : Stores.inMemoryWindowStore(STORE, RETENTION, size, false);
  }

  /** Per-partition aggregation (the default): see LocalAggregate. */
  static Topology localTopology(String topic, int lgK, String storeKind, boolean caching, boolean buffered) {
    StoreBuilder<WindowStore<GroupKey, Revenue>> store =
        Stores.windowStoreBuilder(storeSupplier(storeKind), Types.groupKeySerde(), Types.revenueSerde());
    store = caching ? store.withCachingEnabled() : store.withCachingDisabled();
    StreamsBuilder b = new StreamsBuilder();
    if (buffered) {
      b.addStateStore(AggregateBuffer.builder(BUFFER)); // registered first: see AggregateBuffer
    }
    b.addStateStore(store);
    KStream<byte[], byte[]> src = b.stream(topic, Consumed.with(Serdes.ByteArray(), Serdes.ByteArray()));
    if (buffered) {
      src.process(() -> new LocalAggregate(lgK, true), Named.as("parse-aggregate"), BUFFER, STORE);
    } else {
      src.process(() -> new LocalAggregate(lgK, false), Named.as("parse-aggregate"), STORE);
    }
    return b.build();
  }

  /**
   * The textbook DSL topology: re-key, repartition through Kafka,
   * groupByKey().windowedBy().aggregate(). On a replayed backlog its
   * repartition interleaves partitions that are at different event times, so
   * a 5-minute grace drops records our speed layer counts (measured: see
   * bench/peer/README.md); kept to measure that.
   */
  static Topology repartitionTopology(String topic, int lgK, String storeKind, boolean caching) {
    Duration size = Duration.ofMillis(SIZE_MS), grace = Duration.ofMillis(GRACE_MS), retention = RETENTION;
    WindowBytesStoreSupplier store =
        "rocksdb".equals(storeKind)
            ? Stores.persistentTimestampedWindowStore(STORE, retention, size, false)
            : Stores.inMemoryWindowStore(STORE, retention, size, false);
    Materialized<GroupKey, Revenue, WindowStore<Bytes, byte[]>> m =
        Materialized.<GroupKey, Revenue>as(store)
            .withKeySerde(Types.groupKeySerde())
            .withValueSerde(Types.revenueSerde());
    m = caching ? m.withCachingEnabled() : m.withCachingDisabled();
    StreamsBuilder b = new StreamsBuilder();
    KStream<GroupKey, Order> orders =
        b.stream(topic, Consumed.with(Serdes.ByteArray(), Serdes.ByteArray()))
            .process(Parse::new, Named.as("parse"));
    orders
        .groupByKey(Grouped.with(REPARTITION, Types.groupKeySerde(), Types.orderSerde()))
        .windowedBy(TimeWindows.ofSizeAndGrace(size, grace))
        .aggregate(
            () -> new Revenue(lgK),
            (k, o, agg) -> {
              agg.add(o);
              AGGREGATED.increment();
              lastAggregate = System.nanoTime();
              return agg;
            },
            Named.as("aggregate"),
            m);
    return b.build();
  }

  static HttpServer serve(KafkaStreams streams, int port) throws IOException {
    HttpServer s = HttpServer.create(new InetSocketAddress("127.0.0.1", port), 16);
    s.createContext("/status", ex -> {
      String body = String.format(Locale.ROOT, "{\"state\":\"%s\",\"read\":%d,\"malformed\":%d,\"aggregated\":%d}%n",
          streams.state(), READ.sum(), MALFORMED.sum(), AGGREGATED.sum());
      reply(ex, 200, body);
    });
    // Interactive query: every window of every local task's store.
    s.createContext("/windows", ex -> {
      try {
        ReadOnlyWindowStore<GroupKey, Revenue> st =
            streams.store(StoreQueryParameters.fromNameAndType(STORE, QueryableStoreTypes.<GroupKey, Revenue>windowStore()));
        // The local topology holds one partial window per task: merge them.
        Map<Windowed<GroupKey>, Merged> windows = new LinkedHashMap<>();
        try (KeyValueIterator<Windowed<GroupKey>, Revenue> it = st.all()) {
          while (it.hasNext()) {
            KeyValue<Windowed<GroupKey>, Revenue> kv = it.next();
            windows.computeIfAbsent(kv.key, k -> new Merged()).add(kv.value);
          }
        }
        StringBuilder sb = new StringBuilder(1 << 20);
        for (Map.Entry<Windowed<GroupKey>, Merged> e : windows.entrySet()) {
          Merged r = e.getValue();
          sb.append(String.format(Locale.ROOT,
              "{\"t\":%d,\"tenant\":\"%s\",\"country\":\"%s\",\"orders\":%d,\"revenue\":%s,\"smallest\":%s,\"biggest\":%s,\"buyers\":%d}\n",
              e.getKey().window().start(), e.getKey().key().tenant(), e.getKey().key().country(), r.count,
              Double.toString(r.sum), Double.toString(r.min), Double.toString(r.max), Math.round(r.users.getResult().getEstimate())));
        }
        reply(ex, 200, sb.toString());
      } catch (RuntimeException e) {
        reply(ex, 503, "{\"error\":\"" + e.getClass().getSimpleName() + "\"}\n");
      }
    });
    s.start();
    return s;
  }

  /** A window merged over tasks: the metrics are monoids, uniq an HLL union. */
  static final class Merged {
    long count;
    double sum, min = Double.POSITIVE_INFINITY, max = Double.NEGATIVE_INFINITY;
    final Union users = new Union(12);

    void add(Revenue r) {
      count += r.count;
      sum += r.sum;
      min = Math.min(min, r.min);
      max = Math.max(max, r.max);
      users.update(r.users);
    }
  }

  static void reply(HttpExchange ex, int code, String body) throws IOException {
    byte[] b = body.getBytes(StandardCharsets.UTF_8);
    ex.sendResponseHeaders(code, b.length);
    try (OutputStream o = ex.getResponseBody()) {
      o.write(b);
    }
  }

  /** Polls the application's committed offsets until they reach the topic's end; returns when. */
  static long waitCommitted(Properties p, String group, String topic, long timeoutMs) throws Exception {
    Properties ap = new Properties();
    ap.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, p.get(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG));
    try (Admin admin = Admin.create(ap)) {
      Map<TopicPartition, OffsetSpec> latest = new HashMap<>();
      for (TopicPartitionInfo pi : admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic).partitions()) {
        latest.put(new TopicPartition(topic, pi.partition()), OffsetSpec.latest());
      }
      Map<TopicPartition, Long> end = new HashMap<>();
      admin.listOffsets(latest).all().get().forEach((tp, r) -> end.put(tp, r.offset()));
      long deadline = System.nanoTime() + timeoutMs * 1_000_000L;
      while (System.nanoTime() < deadline) {
        Map<TopicPartition, OffsetAndMetadata> c = admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
        boolean done = true;
        for (Map.Entry<TopicPartition, Long> e : end.entrySet()) {
          OffsetAndMetadata o = c.get(e.getKey());
          if (e.getValue() > 0 && (o == null || o.offset() < e.getValue())) {
            done = false;
            break;
          }
        }
        if (done) {
          return System.nanoTime();
        }
        Thread.sleep(5);
      }
      System.out.println("peer: committed offsets did not reach the end within " + timeoutMs + " ms");
      return System.nanoTime();
    }
  }

  static double metric(KafkaStreams streams, String name, String group) {
    double sum = 0;
    for (Map.Entry<MetricName, ? extends org.apache.kafka.common.Metric> e : streams.metrics().entrySet()) {
      MetricName n = e.getKey();
      if (n.name().equals(name) && n.group().equals(group) && e.getValue().metricValue() instanceof Number v) {
        sum += v.doubleValue();
      }
    }
    return sum;
  }

  static Map<String, String> args(String[] argv) {
    Map<String, String> m = new HashMap<>();
    for (String s : argv) {
      if (!s.startsWith("--") || !s.contains("=")) {
        throw new IllegalArgumentException("arguments are --name=value, got " + s);
      }
      m.put(s.substring(2, s.indexOf('=')), s.substring(s.indexOf('=') + 1));
    }
    return m;
  }

  static String required(Map<String, String> a, String k) {
    String v = a.get(k);
    if (v == null) throw new IllegalArgumentException("--" + k + "= is required");
    return v;
  }
}
