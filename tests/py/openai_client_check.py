#!/usr/bin/env python3
"""Checks `deploybench serve --model ...` with the official `openai` Python
client (PyPI), streaming and not, completions and chat.  A dev/test tool:
exits 77 (skip) when `openai` does not import.

usage: openai_client_check.py BASE_URL MODEL [--text]
  BASE_URL  e.g. http://127.0.0.1:8000/v1
  --text    the server has a tokenizer: send text prompts and chat messages
            (without it only token-id prompts are sent)
Prints one line per check and exits 1 on the first failure.
"""
import sys


def main():
    try:
        import openai
    except Exception as e:  # noqa: BLE001
        print(f"SKIP: the openai package does not import ({e})")
        return 77
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    base, model = sys.argv[1], sys.argv[2]
    text = "--text" in sys.argv[3:]
    c = openai.OpenAI(base_url=base, api_key="none", max_retries=0, timeout=30)

    def check(cond, what):
        print(("ok   " if cond else "FAIL ") + what)
        if not cond:
            sys.exit(1)

    ms = c.models.list()
    check([m.id for m in ms.data] == [model], f"models.list -> {[m.id for m in ms.data]}")

    prompt = "Hello, my name is" if text else [1, 2, 3, 4]
    r = c.completions.create(model=model, prompt=prompt, max_tokens=8, temperature=0,
                             extra_body={"ignore_eos": True})
    check(r.usage.completion_tokens == 8 and r.choices[0].finish_reason == "length",
          f"completions: {r.usage.completion_tokens} tokens, finish {r.choices[0].finish_reason}")
    full = r.choices[0].text

    n, parts, usage = 0, [], None
    for ch in c.completions.create(model=model, prompt=prompt, max_tokens=8, temperature=0, stream=True,
                                   stream_options={"include_usage": True}, extra_body={"ignore_eos": True}):
        if ch.choices:
            n += 1
            parts.append(ch.choices[0].text)
        if ch.usage:
            usage = ch.usage
    check(n == 8 and usage is not None and usage.completion_tokens == 8, f"completions stream: {n} chunks, usage {usage}")
    check("".join(parts) == full, "completions stream text == non-streaming text (greedy)")

    r = c.completions.create(model=model, prompt=prompt, max_tokens=1, temperature=0, echo=True, logprobs=2)
    lp = r.choices[0].logprobs
    check(lp is not None and lp.token_logprobs[0] is None and len(lp.token_logprobs) == r.usage.prompt_tokens + 1,
          f"echo + logprobs: {len(lp.token_logprobs) if lp else None} entries for {r.usage.prompt_tokens} prompt tokens")

    try:
        c.completions.create(model="no-such-model", prompt=prompt, max_tokens=1)
        check(False, "unknown model raises")
    except openai.NotFoundError as e:
        check(e.status_code == 404, "unknown model -> NotFoundError 404")
    try:
        c.completions.create(model=model, prompt=prompt, max_tokens=10**7)
        check(False, "huge max_tokens raises")
    except openai.BadRequestError as e:
        check(e.status_code == 400, "huge max_tokens -> BadRequestError 400")

    if text:
        msgs = [{"role": "user", "content": "Say hi"}]
        r = c.chat.completions.create(model=model, messages=msgs, max_tokens=6, temperature=0,
                                      extra_body={"ignore_eos": True})
        check(r.usage.completion_tokens == 6 and r.choices[0].message.role == "assistant",
              f"chat: {r.usage.completion_tokens} tokens")
        n, usage = 0, None
        for ch in c.chat.completions.create(model=model, messages=msgs, max_tokens=6, temperature=0, stream=True,
                                            stream_options={"include_usage": True},
                                            extra_body={"ignore_eos": True}):
            if ch.choices and ch.choices[0].finish_reason is not None:
                pass
            n += 1 if ch.choices else 0
            if ch.usage:
                usage = ch.usage
        check(usage is not None and usage.completion_tokens == 6, f"chat stream: {n} chunks, usage {usage}")
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
