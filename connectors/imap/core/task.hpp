// SPDX-License-Identifier: Apache-2.0
// Internal to connectors/imap/core: the coroutine type the session core is
// written in. No I/O, no executor: a Task runs only when something resumes
// it, and a core coroutine that needs I/O suspends at a Suspension, handing
// the driver an Action (session.hpp); the owner resumes it with the outcome.
// So the core reads as the straight-line code it replaces, and yet stays a
// state machine that the driver (or a test) steps through.
//
// Every hand-over between Tasks (one starting another, one ending and its
// awaiter going on) goes through a Trampoline's loop rather than a direct
// resume: a loop of ten thousand responses each read by a Task of its own
// then runs in constant stack, optimised or not (GCC turns symmetric
// transfer into a tail call only when optimising).
#pragma once

#include <coroutine>
#include <exception>
#include <optional>
#include <utility>

namespace crmcap::imap::detail {

// Runs coroutines one after the other, each until it suspends: the next is
// the one the last made `ready` (its awaiter, or a Task it awaits).
struct Trampoline {
  std::coroutine_handle<> ready;
  // Resumes `h` and whatever follows from it, until one suspends for its
  // owner (a Suspension) or the root Task ends.
  void run(std::coroutine_handle<> h) {
    ready = h;
    while (ready) std::exchange(ready, {}).resume();
  }
};

template <class T>
class Task;

namespace task_detail {

struct PromiseBase;

// At its end a Task makes the coroutine that awaited it ready; a root Task
// (nothing awaits it) just stops, and its Trampoline's loop returns.
struct FinalAwaiter {
  bool await_ready() const noexcept { return false; }
  template <class Promise>
  void await_suspend(std::coroutine_handle<Promise> h) const noexcept {
    Promise& p = h.promise();
    if (p.continuation) p.trampoline->ready = p.continuation;
  }
  void await_resume() const noexcept {}
};

struct PromiseBase {
  Trampoline* trampoline = nullptr;
  std::coroutine_handle<> continuation;
  std::exception_ptr thrown;
  std::suspend_always initial_suspend() const noexcept { return {}; }
  FinalAwaiter final_suspend() const noexcept { return {}; }
  void unhandled_exception() noexcept { thrown = std::current_exception(); }
};

template <class T>
struct Promise : PromiseBase {
  std::optional<T> value;
  Task<T> get_return_object() noexcept;
  // T made in place from what co_return gives (a Response is large: no
  // move more than needed).
  template <class U = T>
  void return_value(U&& v) {
    value.emplace(std::forward<U>(v));
  }
  T take() {
    if (thrown) std::rethrow_exception(thrown);
    return std::move(*value);
  }
};

template <>
struct Promise<void> : PromiseBase {
  Task<void> get_return_object() noexcept;
  void return_void() noexcept {}
  void take() {
    if (thrown) std::rethrow_exception(thrown);
  }
};

}  // namespace task_detail

// A lazily started coroutine returning T. Awaited by another Task (which
// then goes on when it ends, with its value or its exception), or run as a
// root with start() and done(). It owns its frame: destroying a Task that is
// suspended destroys its frame and so, through their Tasks, every coroutine
// it awaits. Only a Task may await a Task.
template <class T = void>
class [[nodiscard]] Task {
 public:
  using promise_type = task_detail::Promise<T>;
  using Handle = std::coroutine_handle<promise_type>;

  Task() = default;
  explicit Task(Handle h) noexcept : h_(h) {}
  Task(Task&& other) noexcept : h_(std::exchange(other.h_, {})) {}
  Task& operator=(Task&& other) noexcept {
    if (this != &other) {
      if (h_) h_.destroy();
      h_ = std::exchange(other.h_, {});
    }
    return *this;
  }
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;
  ~Task() {
    if (h_) h_.destroy();
  }

  // Awaiting: the awaiting Task suspends and this one is next to run, on
  // the same Trampoline.
  bool await_ready() const noexcept { return false; }
  template <class Promise>
  void await_suspend(std::coroutine_handle<Promise> awaiting) noexcept {
    task_detail::PromiseBase& parent = awaiting.promise();
    promise_type& p = h_.promise();
    p.continuation = awaiting;
    p.trampoline = parent.trampoline;
    p.trampoline->ready = h_;
  }
  T await_resume() { return h_.promise().take(); }

  // As a root: runs it on `trampoline` up to its first suspension for its
  // owner (or its end).
  void start(Trampoline& trampoline) {
    h_.promise().trampoline = &trampoline;
    trampoline.run(h_);
  }
  bool valid() const noexcept { return static_cast<bool>(h_); }
  bool done() const noexcept { return h_.done(); }
  // After done(): its value, or the exception that ended it.
  T result() { return h_.promise().take(); }

 private:
  Handle h_;
};

namespace task_detail {
template <class T>
Task<T> Promise<T>::get_return_object() noexcept {
  return Task<T>(std::coroutine_handle<Promise<T>>::from_promise(*this));
}
inline Task<void> Promise<void>::get_return_object() noexcept {
  return Task<void>(std::coroutine_handle<Promise<void>>::from_promise(*this));
}
}  // namespace task_detail

// Where a core coroutine suspends for its owner: await_suspend keeps the
// coroutine's handle, which the owner resumes (Trampoline::run) once the
// outcome is in place. Holds a pointer only, so that no temporary with a
// destructor lives in a co_await expression (GCC 12 can destroy such a
// temporary twice).
struct Suspension {
  std::coroutine_handle<>* where;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) const noexcept { *where = h; }
  void await_resume() const noexcept {}
};

}  // namespace crmcap::imap::detail
