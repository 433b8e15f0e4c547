//! `workq completions SHELL` and `workq man`, both made from the one argument definition
//! (`Cli`), so they cannot drift from what the binary accepts.

use clap::CommandFactory;
use clap_complete::Shell;

/// bash only: queue names where a command takes one, from the database the command line
/// names (`--db`, `--remote`, `--connect`, or the default), through `workq queue ls --names`.
/// Everything else goes to clap's generated `_workq`.
const BASH_QUEUES: &str = r#"
# Queue names from the database the command line names (workq queue ls --names lists them).
_workq_queues() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"
    local -a conn=() words=()
    local i w
    for ((i = 1; i < COMP_CWORD; i++)); do
        w="${COMP_WORDS[i]}"
        case "$w" in
            --db|--remote|--token|--connect) conn+=("$w" "${COMP_WORDS[i+1]}"); ((i++)) ;;
            -*) ;;
            *) words+=("$w") ;;
        esac
    done
    local n=${#words[@]} want=""
    if [[ "$prev" == "--queue" ]]; then
        want=1
    elif [[ "$cur" != -* ]]; then
        case "${words[0]}" in
            dequeue) [[ $n -ge 1 ]] && want=1 ;;
            import) [[ $n -eq 1 ]] && want=1 ;;
            item) [[ $n -eq 2 && "${words[1]}" == add ]] && want=1 ;;
            queue) [[ $n -eq 2 && "${words[1]}" =~ ^(inspect|update|pause|resume|delete|preview)$ ]] && want=1 ;;
        esac
    fi
    if [[ -n "$want" ]]; then
        local IFS=$'\n'
        COMPREPLY=($(compgen -W "$("${COMP_WORDS[0]}" "${conn[@]}" queue ls --names 2>/dev/null)" -- "$cur"))
        return 0
    fi
    _workq "$@"
}
complete -F _workq_queues -o bashdefault -o default workq
"#;

/// The completion script of `shell`.
pub fn script(shell: Shell) -> String {
    let mut cmd = super::Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "workq", &mut out);
    let mut text = String::from_utf8(out).expect("clap writes UTF-8");
    if shell == Shell::Bash {
        text.push_str(BASH_QUEUES);
    }
    text
}

/// The man page, roff.
pub fn man() -> Vec<u8> {
    let mut out = Vec::new();
    clap_mangen::Man::new(super::Cli::command())
        .render(&mut out)
        .expect("writing to memory");
    out
}
