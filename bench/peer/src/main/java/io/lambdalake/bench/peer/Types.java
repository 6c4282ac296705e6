package io.lambdalake.bench.peer;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import org.apache.datasketches.hll.HllSketch;
import org.apache.datasketches.hll.TgtHllType;
import org.apache.datasketches.memory.Memory;
import org.apache.kafka.common.errors.SerializationException;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;

/** The peer's record types and their typed, hand-written binary serdes. */
final class Types {
  private Types() {}

  /** The view's dimensions: the grouping key. */
  record GroupKey(String tenant, String country) {}

  /**
   * One order as the aggregation needs it: the amount and a 64-bit hash of
   * user_id (16 bytes through the repartition topic instead of the JSON).
   */
  record Order(double amount, long user) {}

  /** 64-bit FNV-1a of a string's chars: the uniq element, no allocation. */
  static long hash(String s) {
    long h = 0xcbf29ce484222325L;
    for (int i = 0; i < s.length(); i++) {
      h ^= s.charAt(i);
      h *= 0x100000001b3L;
    }
    return h;
  }

  /** count/sum/min/max of amount and an HLL of users: the revenue view's metrics. */
  static final class Revenue {
    long count;
    double sum;
    double min = Double.POSITIVE_INFINITY;
    double max = Double.NEGATIVE_INFINITY;
    final HllSketch users;

    Revenue(int lgK) {
      users = new HllSketch(lgK, TgtHllType.HLL_8);
    }

    private Revenue(HllSketch users) {
      this.users = users;
    }

    Revenue add(Order o) {
      count++;
      sum += o.amount();
      min = Math.min(min, o.amount());
      max = Math.max(max, o.amount());
      users.update(o.user());
      return this;
    }
  }

  static Serde<GroupKey> groupKeySerde() {
    Serializer<GroupKey> ser =
        (topic, k) -> {
          if (k == null) return null;
          byte[] t = k.tenant().getBytes(StandardCharsets.UTF_8);
          byte[] c = k.country().getBytes(StandardCharsets.UTF_8);
          ByteBuffer b = ByteBuffer.allocate(4 + t.length + c.length);
          b.putInt(t.length).put(t).put(c);
          return b.array();
        };
    Deserializer<GroupKey> de =
        (topic, b) -> {
          if (b == null) return null;
          ByteBuffer buf = ByteBuffer.wrap(b);
          int n = buf.getInt();
          if (n < 0 || n > b.length - 4) throw new SerializationException("bad group key");
          String t = new String(b, 4, n, StandardCharsets.UTF_8);
          String c = new String(b, 4 + n, b.length - 4 - n, StandardCharsets.UTF_8);
          return new GroupKey(t, c);
        };
    return Serdes.serdeFrom(ser, de);
  }

  static Serde<Order> orderSerde() {
    Serializer<Order> ser =
        (topic, o) -> o == null ? null : ByteBuffer.allocate(16).putDouble(o.amount()).putLong(o.user()).array();
    Deserializer<Order> de =
        (topic, b) -> {
          if (b == null) return null;
          if (b.length != 16) throw new SerializationException("bad order");
          ByteBuffer buf = ByteBuffer.wrap(b);
          return new Order(buf.getDouble(), buf.getLong());
        };
    return Serdes.serdeFrom(ser, de);
  }

  private static final int HEADER = 8 * 4;

  static Serde<Revenue> revenueSerde() {
    Serializer<Revenue> ser =
        (topic, r) -> {
          if (r == null) return null;
          // The updatable image: heapify reads it back without merging.
          byte[] sk = r.users.toUpdatableByteArray();
          ByteBuffer b = ByteBuffer.allocate(HEADER + sk.length);
          b.putLong(r.count).putDouble(r.sum).putDouble(r.min).putDouble(r.max).put(sk);
          return b.array();
        };
    Deserializer<Revenue> de =
        (topic, b) -> {
          if (b == null) return null;
          if (b.length < HEADER) throw new SerializationException("bad revenue");
          ByteBuffer buf = ByteBuffer.wrap(b);
          Revenue r = new Revenue(HllSketch.heapify(Memory.wrap(b).region(HEADER, b.length - HEADER)));
          r.count = buf.getLong();
          r.sum = buf.getDouble();
          r.min = buf.getDouble();
          r.max = buf.getDouble();
          return r;
        };
    return Serdes.serdeFrom(ser, de);
  }
}
