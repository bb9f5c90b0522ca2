#include <keel/log.hpp>
#include <keel/utf8.hpp>

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <ctime>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace keel::log {

namespace {

// Bounds on what may wait for stderr, in lines and in bytes (the line being
// written by the writer included), so a stuck stderr costs bounded memory.
constexpr std::size_t max_pending_lines = 8192;
constexpr std::size_t max_pending_bytes = 4 * 1024 * 1024;
// How long process exit waits for queued lines to reach stderr. Past this the
// writer is presumed stuck on a reader that went away and is abandoned.
constexpr auto exit_drain_limit = std::chrono::seconds(2);
// How long the writer lets lines gather after the first one wakes it, and
// the size that cuts the wait short. Without it a busy server woke the writer
// for nearly every line: a futex wake-up and two context switches per request
// (measured: 0.77 per request with the access log on, one core).
constexpr auto batch_linger = std::chrono::milliseconds(2);
constexpr std::size_t batch_bytes = 64 * 1024;

std::atomic<int> current_level{static_cast<int>(level::info)};
std::atomic<std::uint64_t> dropped_lines{0};

// Writes all of `data` to fd 2. Gives up only on a hard error: there is
// nowhere left to report it.
void write_all(std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(2, data.data(), data.size());
    if (n > 0) {
      data.remove_prefix(std::size_t(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      // Someone made the shared stderr non-blocking; wait instead of spinning.
      pollfd p{2, POLLOUT, 0};
      ::poll(&p, 1, 100);
    } else {
      return;
    }
  }
}

// Everything the writer thread shares with callers. It is allocated once and
// never freed: a writer abandoned at exit (stderr stuck) may still touch it
// while the process tears down static objects.
struct shared_state {
  std::mutex m;
  std::condition_variable work;  // writer waits for lines or stop
  std::condition_variable idle;  // flush() and exit wait for progress
  // Lines are appended to one buffer rather than queued one by one: a caller
  // pays a memcpy, not an allocation, and the writer swaps the whole buffer
  // out and writes it with one system call.
  std::string front;
  std::size_t front_lines = 0;
  std::size_t pending_lines = 0;  // in front and in the writer's hands
  std::size_t pending_bytes = 0;
  std::uint64_t accepted = 0;  // lines queued since start
  std::uint64_t written = 0;   // lines handed to write(2)
  bool started = false;
  bool stopping = false;
  int flushing = 0;  // flush() calls waiting: the writer must not linger
  bool writer_done = false;
  bool stopped = false;    // exit has run
  bool abandoned = false;  // exit gave up waiting for the writer
  std::thread writer;
};

shared_state& state() {
  static shared_state* s = new shared_state;
  return *s;
}

char const* level_name(level l) {
  switch (l) {
    case level::debug: return "debug";
    case level::info: return "info";
    case level::warn: return "warn";
    case level::error: return "error";
  }
  return "info";
}

void writer_loop(shared_state& st) {
  std::string back;
  std::uint64_t reported_drops = 0;
  std::unique_lock lk(st.m);
  for (;;) {
    st.work.wait(lk, [&] { return !st.front.empty() || st.stopping; });
    if (st.front.empty()) break;
    // Let a burst gather: one wake-up and one write(2) per batch, not per line.
    st.work.wait_for(lk, batch_linger,
                     [&] { return st.stopping || st.flushing > 0 || st.front.size() >= batch_bytes; });
    back.swap(st.front);
    std::size_t lines = st.front_lines;
    st.front_lines = 0;
    lk.unlock();

    write_all(back);
    // Say once the queue has room again that lines were lost, so someone
    // reading only the log still learns of the gap.
    std::uint64_t drops = dropped_lines.load(std::memory_order_relaxed);
    if (drops != reported_drops) {
      std::string note;
      note.reserve(128);
      note += "{\"ts\":\"";
      append_timestamp(note);
      note += "\",\"level\":\"warn\",\"msg\":\"log lines dropped\",\"dropped\":";
      char buf[24];
      note.append(buf, std::to_chars(buf, buf + sizeof buf, drops - reported_drops).ptr);
      note += ",\"dropped_total\":";
      note.append(buf, std::to_chars(buf, buf + sizeof buf, drops).ptr);
      note += "}\n";
      write_all(note);
      reported_drops = drops;
    }
    std::size_t bytes = back.size();
    back.clear();
    // A burst can grow the buffer to the byte bound; keep that memory only
    // while bursts last.
    if (back.capacity() > 256 * 1024) std::string().swap(back);

    lk.lock();
    st.pending_lines -= lines;
    st.pending_bytes -= bytes;
    st.written += lines;
    st.idle.notify_all();
  }
  st.writer_done = true;
  st.idle.notify_all();
}

// Drains the queue and joins the writer when the process exits normally.
struct exit_guard {
  exit_guard() = default;
  exit_guard(exit_guard const&) = delete;
  exit_guard& operator=(exit_guard const&) = delete;
  ~exit_guard() {
    auto& st = state();
    std::unique_lock lk(st.m);
    if (!st.started || st.stopped) return;
    st.stopping = true;
    st.work.notify_one();
    bool done = st.idle.wait_for(lk, exit_drain_limit, [&] { return st.writer_done; });
    st.stopped = true;
    st.abandoned = !done;
    lk.unlock();
    // A writer blocked in write(2) cannot be joined; it dies with the process.
    if (done)
      st.writer.join();
    else
      st.writer.detach();
  }
};

// Called with st.m held.
void start_writer(shared_state& st) {
  static exit_guard guard;  // constructed before the writer so it outlives none of its users
  st.started = true;
  // The writer runs with every signal blocked: SIGPIPE from a closed stderr
  // must turn into EPIPE rather than kill the server, and process signals
  // belong to the threads that handle them.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  try {
    st.writer = std::thread([&st] { writer_loop(st); });
  } catch (...) {
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    st.started = false;
    throw;
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

// Queues one line (newline included). Drops and counts it when the bounds are
// reached: the caller never waits for stderr.
void enqueue(std::string_view line) {
  auto& st = state();
  bool wake = false;
  {
    std::unique_lock lk(st.m);
    if (st.stopped) {
      // After exit ran there is no writer: write directly, unless the writer
      // was abandoned because stderr is stuck.
      if (st.abandoned) {
        dropped_lines.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      lk.unlock();
      write_all(line);
      return;
    }
    if (st.pending_lines >= max_pending_lines || st.pending_bytes + line.size() > max_pending_bytes) {
      dropped_lines.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    if (!st.started) {
      try {
        start_writer(st);
      } catch (...) {
        dropped_lines.fetch_add(1, std::memory_order_relaxed);
        return;
      }
    }
    // The writer sleeps only when the buffer is empty (or lingers for more
    // lines), so only the first line after that, or the one that fills a
    // batch, needs a (costly) wake-up.
    wake = st.front.empty() || (st.front.size() < batch_bytes && st.front.size() + line.size() >= batch_bytes);
    if (st.front.capacity() == 0) st.front.reserve(16 * 1024);
    st.front.append(line);
    ++st.front_lines;
    ++st.pending_lines;
    st.pending_bytes += line.size();
    ++st.accepted;
  }
  if (wake) st.work.notify_one();
}

void append_number(std::string& out, std::int64_t v) {
  char buf[24];
  out.append(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
}

void append_number(std::string& out, std::uint64_t v) {
  char buf[24];
  out.append(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
}

void append_number(std::string& out, double v) {
  if (!std::isfinite(v)) {
    out += "null";
    return;
  }
  char buf[400];
  double a = std::fabs(v);
  // Shortest round-trip digits, in plain notation for the range where a
  // person reads numbers (0.21, 1500000); exponents only for extremes.
  auto fmt = (a == 0 || (a >= 1e-6 && a < 1e15)) ? std::chars_format::fixed : std::chars_format::general;
  auto r = std::to_chars(buf, buf + sizeof buf, v, fmt);
  if (r.ec != std::errc()) r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

std::size_t estimate(std::string_view msg, std::initializer_list<field> fields) {
  std::size_t n = 64 + msg.size();
  for (auto const& f : fields) {
    n += f.key.size() + 8;
    if (auto const* s = std::get_if<std::string_view>(&f.value))
      n += s->size() + 2;
    else
      n += 24;
  }
  return n;
}

}  // namespace

void set_level(level l) { current_level.store(static_cast<int>(l), std::memory_order_relaxed); }

level get_level() { return static_cast<level>(current_level.load(std::memory_order_relaxed)); }

level parse_level(std::string_view name) {
  auto is = [&](std::string_view want) {
    if (name.size() != want.size()) return false;
    for (std::size_t i = 0; i < want.size(); ++i) {
      char c = name[i];
      if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
      if (c != want[i]) return false;
    }
    return true;
  };
  if (is("debug")) return level::debug;
  if (is("info")) return level::info;
  if (is("warn")) return level::warn;
  if (is("error")) return level::error;
  throw std::invalid_argument("invalid log level \"" + std::string(name) +
                              "\" (use debug, info, warn or error)");
}

void write(level l, std::string_view msg, std::initializer_list<field> fields) {
  if (!enabled(l)) return;
  // One buffer per thread keeps its capacity: formatting a line allocates
  // nothing once a thread has logged a few lines.
  thread_local std::string line;
  line.clear();
  line.reserve(estimate(msg, fields));
  line += "{\"ts\":\"";
  append_timestamp(line);
  line += "\",\"level\":\"";
  line += level_name(l);
  line += "\",\"msg\":\"";
  append_escaped(line, msg);
  line += '"';
  for (auto const& f : fields) {
    line += ",\"";
    append_escaped(line, f.key);
    line += "\":";
    std::visit(
        [&](auto v) {
          using V = decltype(v);
          if constexpr (std::is_same_v<V, std::string_view>) {
            line += '"';
            append_escaped(line, v);
            line += '"';
          } else if constexpr (std::is_same_v<V, bool>) {
            line += v ? "true" : "false";
          } else {
            append_number(line, v);
          }
        },
        f.value);
  }
  line += "}\n";
  enqueue(line);
  // A rare huge line should not pin its memory to the thread forever.
  if (line.capacity() > 64 * 1024) std::string().swap(line);
}

void write_raw(std::string line) {
  line += '\n';
  enqueue(line);
}

void write_line(std::string_view line) {
  if (line.empty() || line.back() != '\n') {
    write_raw(std::string(line));
    return;
  }
  enqueue(line);
}

std::uint64_t dropped() { return dropped_lines.load(std::memory_order_relaxed); }

void flush() {
  auto& st = state();
  std::unique_lock lk(st.m);
  if (!st.started || st.stopped) return;
  std::uint64_t target = st.accepted;
  ++st.flushing;
  st.work.notify_one();
  st.idle.wait(lk, [&] { return st.written >= target || st.writer_done; });
  --st.flushing;
}

// Bytes copied as they are: printable ASCII except '"' and '\\'. A table
// lookup per byte is the cheapest test for the common case.
constexpr auto plain_bytes = [] {
  std::array<bool, 256> t{};
  for (int c = 0x20; c < 0x80; ++c) t[c] = c != '"' && c != '\\';
  return t;
}();

void append_escaped(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  auto const* p = reinterpret_cast<unsigned char const*>(s.data());
  auto const* end = p + s.size();
  while (p < end) {
    // Copy runs of plain ASCII in one append: the common case by far.
    auto const* run = p;
    while (p < end && plain_bytes[*p]) ++p;
    if (p != run) out.append(reinterpret_cast<char const*>(run), std::size_t(p - run));
    if (p == end) break;
    unsigned char c = *p;
    if (c < 0x80) {
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        default:
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 0xf];
      }
      ++p;
      continue;
    }
    std::size_t bad = 0;
    auto len = utf8_sequence_length(std::string_view(reinterpret_cast<char const*>(p), std::size_t(end - p)), &bad);
    if (len) {
      out.append(reinterpret_cast<char const*>(p), len);
      p += len;
    } else {
      out += "\\ufffd";  // one replacement per maximal invalid prefix (keel/utf8.hpp)
      p += bad;
    }
  }
}

void append_timestamp(std::string& out) {
  using namespace std::chrono;
  auto now = duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
  auto sec = now / 1000;
  auto ms = now % 1000;
  if (ms < 0) {
    ms += 1000;
    sec -= 1;
  }
  // gmtime_r and the digits cost more than the rest of a line; a thread
  // formats each second once.
  struct cache {
    std::int64_t sec = std::numeric_limits<std::int64_t>::min();
    char text[20];
  };
  thread_local cache c;
  if (c.sec != sec) {
    std::time_t t = static_cast<std::time_t>(sec);
    std::tm tm{};
    gmtime_r(&t, &tm);
    auto put2 = [](char* at, int v) {
      at[0] = char('0' + v / 10);
      at[1] = char('0' + v % 10);
    };
    int year = tm.tm_year + 1900;
    c.text[0] = char('0' + year / 1000 % 10);
    c.text[1] = char('0' + year / 100 % 10);
    c.text[2] = char('0' + year / 10 % 10);
    c.text[3] = char('0' + year % 10);
    c.text[4] = '-';
    put2(c.text + 5, tm.tm_mon + 1);
    c.text[7] = '-';
    put2(c.text + 8, tm.tm_mday);
    c.text[10] = 'T';
    put2(c.text + 11, tm.tm_hour);
    c.text[13] = ':';
    put2(c.text + 14, tm.tm_min);
    c.text[16] = ':';
    put2(c.text + 17, tm.tm_sec);
    c.sec = sec;
  }
  char tail[5] = {'.', char('0' + ms / 100), char('0' + ms / 10 % 10), char('0' + ms % 10), 'Z'};
  out.append(c.text, 19);
  out.append(tail, 5);
}

}  // namespace keel::log
