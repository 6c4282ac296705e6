package io.lambdalake.bench.peer;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.StreamReadConstraints;
import java.io.IOException;
import java.math.BigDecimal;
import java.time.OffsetDateTime;
import java.time.format.DateTimeParseException;
import java.util.regex.Pattern;

/**
 * Decodes one orders event with Jackson's streaming parser: one pass over the
 * bytes, no tree, no reflection. It accepts exactly what lambdalake's schema
 * decoder accepts for the orders schema (every field is checked, the ones the
 * revenue view does not read too), so both sides drop the same malformed
 * records: a JSON object; order_id, tenant, country, user_id strings; ts an
 * RFC 3339 string or integer epoch milliseconds; amount a decimal(18,2) as
 * a JSON number or a string of one (at most 2 decimals and 16 integer digits
 * once trailing and leading zeros are dropped, never rounded — see
 * decimalAmount);
 * coupon an optional string; unknown keys ignored; nothing after the object.
 * Not thread-safe: one per stream task.
 */
final class OrderParser {
  private static final JsonFactory JSON =
      JsonFactory.builder()
          .streamReadConstraints(StreamReadConstraints.defaults())
          .build();

  // lambdalake's bounds for epoch milliseconds: years 1..9999.
  static final long MIN_EPOCH_MILLIS = -62135596800000L;
  static final long MAX_EPOCH_MILLIS = 253402300799999L;

  /** What one record decodes to; reused between records. */
  static final class Parsed {
    String tenant, country, userId;
    long tsMillis;
    double amount;
  }

  // lambdalake's decimal text: [+-]digits[.digits][(e|E)[+-]digits].
  private static final Pattern DECIMAL = Pattern.compile("[+-]?[0-9]+(\\.[0-9]+)?([eE][+-]?[0-9]+)?");
  private static final Pattern ZERO = Pattern.compile("[+-]?[0.]+");

  /**
   * The value of a decimal(18,2) amount as the nearest double (what the
   * lambdalake side converts its exact cents to for the comparison), or NaN
   * if lambdalake refuses the text: not its syntax, a nonzero digit past
   * the second decimal, or more than 16 digits before the point.
   */
  static double decimalAmount(String text) {
    if (text.length() > 64 || !DECIMAL.matcher(text).matches()) {
      return Double.NaN;
    }
    int exp = Math.max(text.indexOf('e'), text.indexOf('E'));
    if (ZERO.matcher(exp < 0 ? text : text.substring(0, exp)).matches()) {
      return 0; // zero in any form, whatever its exponent
    }
    BigDecimal d;
    try {
      d = new BigDecimal(text).stripTrailingZeros();
    } catch (NumberFormatException e) {
      return Double.NaN;
    }
    if (d.signum() == 0) {
      return 0;
    }
    if (d.scale() > 2 || d.precision() - d.scale() > 16) {
      return Double.NaN;
    }
    return d.doubleValue();
  }

  // Tenants and countries repeat: share their Strings instead of one per event.
  private final StringCache tenants = new StringCache();
  private final StringCache countries = new StringCache();

  /** Decodes value into out; false if lambdalake would reject it. */
  boolean parse(byte[] value, Parsed out) {
    if (value == null) {
      return false;
    }
    try (JsonParser p = JSON.createParser(value)) {
      if (p.nextToken() != JsonToken.START_OBJECT) {
        return false;
      }
      boolean orderId = false, ts = false, tenant = false, country = false, user = false, amount = false;
      while (true) {
        JsonToken t = p.nextToken();
        if (t == JsonToken.END_OBJECT) {
          break;
        }
        if (t != JsonToken.FIELD_NAME) {
          return false;
        }
        // Jackson interns key names (its symbol table), so the switch
        // below compares cached hashes, not bytes.
        String name = p.currentName();
        JsonToken v = p.nextToken();
        if (v == null) {
          return false;
        }
        switch (name) {
          case "order_id":
            if (v != JsonToken.VALUE_STRING) return false;
            orderId = true;
            break;
          case "tenant":
            if (v != JsonToken.VALUE_STRING) return false;
            out.tenant = tenants.get(p);
            tenant = true;
            break;
          case "country":
            if (v != JsonToken.VALUE_STRING) return false;
            out.country = countries.get(p);
            country = true;
            break;
          case "user_id":
            if (v != JsonToken.VALUE_STRING) return false;
            out.userId = p.getText();
            user = true;
            break;
          case "amount":
            if (v != JsonToken.VALUE_NUMBER_INT && v != JsonToken.VALUE_NUMBER_FLOAT && v != JsonToken.VALUE_STRING) return false;
            double a = decimalAmount(p.getText());
            if (Double.isNaN(a)) return false;
            out.amount = a;
            amount = true;
            break;
          case "ts":
            if (v == JsonToken.VALUE_STRING) {
              long ms = parseTime(p.getTextCharacters(), p.getTextOffset(), p.getTextLength());
              if (ms == Long.MIN_VALUE) return false;
              out.tsMillis = ms;
            } else if (v == JsonToken.VALUE_NUMBER_INT) {
              if (p.getNumberType() == JsonParser.NumberType.BIG_INTEGER) return false;
              long ms = p.getLongValue();
              if (ms < MIN_EPOCH_MILLIS || ms > MAX_EPOCH_MILLIS) return false;
              out.tsMillis = ms;
            } else {
              return false;
            }
            ts = true;
            break;
          case "coupon":
            if (v != JsonToken.VALUE_STRING && v != JsonToken.VALUE_NULL) return false;
            break;
          default:
            p.skipChildren(); // unknown key: any JSON value
        }
      }
      // lambdalake rejects anything after the object.
      if (p.nextToken() != null) {
        return false;
      }
      return orderId && ts && tenant && country && user && amount;
    } catch (IOException | RuntimeException e) {
      return false; // truncated or not JSON at all
    }
  }

  /**
   * Epoch milliseconds (floored) of an RFC 3339 time, or Long.MIN_VALUE. The
   * common UTC form takes a fast path, as in lambdalake's decoder.
   */
  static long parseTime(char[] b, int off, int n) {
    long fast = parseUTC(b, off, n);
    if (fast != Long.MIN_VALUE) {
      return fast;
    }
    try {
      OffsetDateTime t = OffsetDateTime.parse(new String(b, off, n));
      int year = t.toInstant().atOffset(java.time.ZoneOffset.UTC).getYear();
      if (year < 1 || year > 9999) return Long.MIN_VALUE;
      return Math.floorDiv(t.toEpochSecond() * 1_000_000L + t.getNano() / 1000, 1000L);
    } catch (DateTimeParseException e) {
      return Long.MIN_VALUE;
    }
  }

  private static long parseUTC(char[] b, int o, int n) {
    if (n < 20 || b[o + 4] != '-' || b[o + 7] != '-' || b[o + 10] != 'T' || b[o + 13] != ':'
        || b[o + 16] != ':' || b[o + n - 1] != 'Z') {
      return Long.MIN_VALUE;
    }
    int year = digits(b, o, 4), month = digits(b, o + 5, 2), day = digits(b, o + 8, 2);
    int hour = digits(b, o + 11, 2), minute = digits(b, o + 14, 2), sec = digits(b, o + 17, 2);
    if (year < 1 || month < 1 || month > 12 || day < 1 || day > daysIn(month, year)
        || hour < 0 || hour > 23 || minute < 0 || minute > 59 || sec < 0 || sec > 59) {
      return Long.MIN_VALUE;
    }
    int millis = 0;
    if (n > 20) {
      int fracLen = n - 21;
      if (b[o + 19] != '.' || fracLen < 1 || fracLen > 9) {
        return Long.MIN_VALUE;
      }
      int f = digits(b, o + 20, fracLen);
      if (f < 0) {
        return Long.MIN_VALUE;
      }
      for (int i = fracLen; i < 9; i++) {
        f *= 10;
      }
      millis = f / 1_000_000;
    }
    long days = java.time.LocalDate.of(year, month, day).toEpochDay();
    return ((days * 24 + hour) * 60 + minute) * 60_000L + sec * 1000L + millis;
  }

  private static int digits(char[] b, int o, int n) {
    int v = 0;
    for (int i = 0; i < n; i++) {
      char c = b[o + i];
      if (c < '0' || c > '9') {
        return -1;
      }
      v = v * 10 + (c - '0');
    }
    return v;
  }

  private static int daysIn(int month, int year) {
    switch (month) {
      case 2:
        return (year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)) ? 29 : 28;
      case 4: case 6: case 9: case 11:
        return 30;
      default:
        return 31;
    }
  }

  /** A small direct-mapped cache of Strings for low-cardinality fields. */
  static final class StringCache {
    private final String[] slots = new String[256];

    String get(JsonParser p) throws IOException {
      char[] b = p.getTextCharacters();
      int o = p.getTextOffset(), n = p.getTextLength();
      int h = n;
      for (int i = 0; i < n; i++) {
        h = 31 * h + b[o + i];
      }
      int slot = (h ^ (h >>> 8)) & 255;
      String s = slots[slot];
      if (s != null && same(s, b, o, n)) {
        return s;
      }
      s = new String(b, o, n);
      slots[slot] = s;
      return s;
    }

    private static boolean same(String s, char[] b, int o, int n) {
      if (s.length() != n) {
        return false;
      }
      for (int i = 0; i < n; i++) {
        if (s.charAt(i) != b[o + i]) {
          return false;
        }
      }
      return true;
    }
  }
}
