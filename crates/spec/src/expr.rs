//! Objective expressions (`objective: 4 * x^2`): numbers, parameters, `+ - * /`, `^` or
//! `**`, unary minus, parentheses, and one-argument functions. Parsed by precedence
//! climbing into an [`Expr`]; an error names the column in the expression
//! (`objective:1:9: unknown name `y`; parameters: x`).
//!
//! Precedence follows Python's (and PyTorch's tensors'): `^` binds tightest and groups
//! from the right (`2^3^2` is `2^9`), then unary minus (`-x^2` is `-(x^2)`), then `* /`,
//! then `+ -`, both grouping from the left.

use std::fmt;

/// A function of one argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    /// `exp`.
    Exp,
    /// `log` (natural).
    Log,
    /// `sqrt`.
    Sqrt,
    /// `abs`.
    Abs,
    /// `sin`.
    Sin,
    /// `cos`.
    Cos,
    /// `tanh`.
    Tanh,
    /// `sigmoid`.
    Sigmoid,
    /// `relu`.
    Relu,
    /// `sum` of a vector's elements.
    Sum,
    /// `mean` of a vector's elements.
    Mean,
}

impl Func {
    /// Every function, in the order messages list them.
    pub const ALL: [Func; 11] = [
        Func::Exp,
        Func::Log,
        Func::Sqrt,
        Func::Abs,
        Func::Sin,
        Func::Cos,
        Func::Tanh,
        Func::Sigmoid,
        Func::Relu,
        Func::Sum,
        Func::Mean,
    ];

    /// Its name in an expression.
    pub fn name(self) -> &'static str {
        match self {
            Func::Exp => "exp",
            Func::Log => "log",
            Func::Sqrt => "sqrt",
            Func::Abs => "abs",
            Func::Sin => "sin",
            Func::Cos => "cos",
            Func::Tanh => "tanh",
            Func::Sigmoid => "sigmoid",
            Func::Relu => "relu",
            Func::Sum => "sum",
            Func::Mean => "mean",
        }
    }
}

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `+`.
    Add,
    /// `-`.
    Sub,
    /// `*`.
    Mul,
    /// `/`.
    Div,
    /// `^` or `**`.
    Pow,
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A number.
    Num(f64),
    /// A parameter, by its position in `params`.
    Param(usize),
    /// `-e`.
    Neg(Box<Expr>),
    /// `a op b`.
    Bin(BinOp, Box<Expr>, Box<Expr>),
    /// `f(e)`.
    Call(Func, Box<Expr>),
}

/// An expression that does not parse: the 1-based column (in characters) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError {
    /// 1-based column in the expression.
    pub column: usize,
    /// What is wrong there.
    pub message: String,
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "objective:1:{}: {}", self.column, self.message)
    }
}

/// Deepest nesting of parentheses, unary minus and calls: a hostile expression cannot
/// overflow the parser's stack.
const MAX_DEPTH: usize = 200;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Name(String),
    Op(char),
    Pow,
    Open,
    Close,
    End,
}

/// Parses `text` over the parameters named `params`.
pub fn parse_expr(text: &str, params: &[&str]) -> Result<Expr, ExprError> {
    let tokens = lex(text)?;
    let mut p = Parser {
        tokens,
        at: 0,
        params,
        depth: 0,
    };
    let e = p.sum()?;
    match p.peek() {
        Tok::End => Ok(e),
        Tok::Close => Err(p.error("unmatched `)`".into())),
        other => Err(p.error(format!("expected an operator, found {}", describe(other)))),
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Num(v) => format!("the number {v}"),
        Tok::Name(n) => format!("`{n}`"),
        Tok::Op(c) => format!("`{c}`"),
        Tok::Pow => "`^`".into(),
        Tok::Open => "`(`".into(),
        Tok::Close => "`)`".into(),
        Tok::End => "the end".into(),
    }
}

/// Tokens with their 1-based columns.
fn lex(text: &str) -> Result<Vec<(Tok, usize)>, ExprError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let column = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
                let mut j = i + 1;
                if j < chars.len() && (chars[j] == '+' || chars[j] == '-') {
                    j += 1;
                }
                if j < chars.len() && chars[j].is_ascii_digit() {
                    i = j;
                    while i < chars.len() && chars[i].is_ascii_digit() {
                        i += 1;
                    }
                }
            }
            let s: String = chars[start..i].iter().collect();
            let v: f64 = s.parse().map_err(|_| ExprError {
                column,
                message: format!("`{s}` is not a number"),
            })?;
            out.push((Tok::Num(v), column));
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push((Tok::Name(chars[start..i].iter().collect()), column));
            continue;
        }
        let tok = match c {
            '*' if chars.get(i + 1) == Some(&'*') => {
                i += 1;
                Tok::Pow
            }
            '^' => Tok::Pow,
            '+' | '-' | '*' | '/' => Tok::Op(c),
            '(' => Tok::Open,
            ')' => Tok::Close,
            _ => {
                return Err(ExprError {
                    column,
                    message: format!(
                        "unexpected `{}`; an objective holds numbers, parameters, + - * / ^ ** and parentheses",
                        c.escape_debug()
                    ),
                })
            }
        };
        out.push((tok, column));
        i += 1;
    }
    out.push((Tok::End, chars.len() + 1));
    Ok(out)
}

struct Parser<'p> {
    tokens: Vec<(Tok, usize)>,
    at: usize,
    params: &'p [&'p str],
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.tokens[self.at].0
    }

    fn column(&self) -> usize {
        self.tokens[self.at].1
    }

    fn error(&self, message: String) -> ExprError {
        ExprError {
            column: self.column(),
            message,
        }
    }

    fn bump(&mut self) -> Tok {
        let t = self.tokens[self.at].0.clone();
        if t != Tok::End {
            self.at += 1;
        }
        t
    }

    fn deeper(&mut self) -> Result<(), ExprError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(format!("nested more than {MAX_DEPTH} deep")));
        }
        Ok(())
    }

    /// `term (('+' | '-') term)*`.
    fn sum(&mut self) -> Result<Expr, ExprError> {
        let mut e = self.product()?;
        while let Tok::Op(c @ ('+' | '-')) = *self.peek() {
            self.bump();
            let op = if c == '+' { BinOp::Add } else { BinOp::Sub };
            e = Expr::Bin(op, Box::new(e), Box::new(self.product()?));
        }
        Ok(e)
    }

    /// `unary (('*' | '/') unary)*`.
    fn product(&mut self) -> Result<Expr, ExprError> {
        let mut e = self.unary()?;
        while let Tok::Op(c @ ('*' | '/')) = *self.peek() {
            self.bump();
            let op = if c == '*' { BinOp::Mul } else { BinOp::Div };
            e = Expr::Bin(op, Box::new(e), Box::new(self.unary()?));
        }
        Ok(e)
    }

    /// `'-' unary | '+' unary | power`.
    fn unary(&mut self) -> Result<Expr, ExprError> {
        match *self.peek() {
            Tok::Op('-') => {
                self.bump();
                self.deeper()?;
                let e = self.unary()?;
                self.depth -= 1;
                Ok(Expr::Neg(Box::new(e)))
            }
            Tok::Op('+') => {
                self.bump();
                self.deeper()?;
                let e = self.unary()?;
                self.depth -= 1;
                Ok(e)
            }
            _ => self.power(),
        }
    }

    /// `atom ('^' unary)?`: right-associative, and `2^-1` allowed as in Python.
    fn power(&mut self) -> Result<Expr, ExprError> {
        let base = self.atom()?;
        if *self.peek() == Tok::Pow {
            self.bump();
            self.deeper()?;
            let exponent = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Bin(BinOp::Pow, Box::new(base), Box::new(exponent)));
        }
        Ok(base)
    }

    /// A number, a parameter, `(sum)` or `f(sum)`.
    fn atom(&mut self) -> Result<Expr, ExprError> {
        let column = self.column();
        match self.bump() {
            Tok::Num(v) => Ok(Expr::Num(v)),
            Tok::Open => {
                self.deeper()?;
                let e = self.sum()?;
                self.depth -= 1;
                self.close(column)?;
                Ok(e)
            }
            Tok::Name(name) => {
                if let Some(f) = Func::ALL.iter().find(|f| f.name() == name) {
                    if *self.peek() != Tok::Open {
                        return Err(
                            self.error(format!("`{name}` is a function: write {name}(...)"))
                        );
                    }
                    let open = self.column();
                    self.bump();
                    self.deeper()?;
                    let arg = self.sum()?;
                    self.depth -= 1;
                    self.close(open)?;
                    return Ok(Expr::Call(*f, Box::new(arg)));
                }
                match self.params.iter().position(|p| *p == name) {
                    Some(i) => Ok(Expr::Param(i)),
                    None => Err(ExprError {
                        column,
                        message: format!(
                            "unknown name `{name}`; parameters: {}; functions: {}",
                            if self.params.is_empty() {
                                "none".to_owned()
                            } else {
                                self.params.join(", ")
                            },
                            Func::ALL.map(Func::name).join(", ")
                        ),
                    }),
                }
            }
            Tok::End => Err(ExprError {
                column,
                message: "the expression ends where a number, a parameter or `(` belongs".into(),
            }),
            other => Err(ExprError {
                column,
                message: format!(
                    "expected a number, a parameter or `(`, found {}",
                    describe(&other)
                ),
            }),
        }
    }

    /// The `)` of the `(` at column `open`.
    fn close(&mut self, open: usize) -> Result<(), ExprError> {
        match self.peek() {
            Tok::Close => {
                self.bump();
                Ok(())
            }
            other => Err(self.error(format!(
                "expected `)` to close the `(` at column {open}, found {}",
                describe(other)
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(v: f64) -> Box<Expr> {
        Box::new(Expr::Num(v))
    }

    fn x() -> Box<Expr> {
        Box::new(Expr::Param(0))
    }

    #[test]
    fn precedence_and_associativity_are_pythons() {
        let p = |s| parse_expr(s, &["x", "w"]).unwrap();
        assert_eq!(
            p("4 * x^2"),
            Expr::Bin(
                BinOp::Mul,
                num(4.0),
                Box::new(Expr::Bin(BinOp::Pow, x(), num(2.0)))
            )
        );
        assert_eq!(p("4*x**2"), p("4 * x^2"));
        assert_eq!(
            p("-x^2"),
            Expr::Neg(Box::new(Expr::Bin(BinOp::Pow, x(), num(2.0))))
        );
        assert_eq!(
            p("2^3^2"),
            Expr::Bin(
                BinOp::Pow,
                num(2.0),
                Box::new(Expr::Bin(BinOp::Pow, num(3.0), num(2.0)))
            )
        );
        assert_eq!(
            p("1 - 2 - 3"),
            Expr::Bin(
                BinOp::Sub,
                Box::new(Expr::Bin(BinOp::Sub, num(1.0), num(2.0))),
                num(3.0)
            )
        );
        assert_eq!(
            p("x^-1"),
            Expr::Bin(BinOp::Pow, x(), Box::new(Expr::Neg(num(1.0))))
        );
        assert_eq!(
            p("mean((w - 1.5e-1)^2)"),
            Expr::Call(
                Func::Mean,
                Box::new(Expr::Bin(
                    BinOp::Pow,
                    Box::new(Expr::Bin(BinOp::Sub, Box::new(Expr::Param(1)), num(0.15))),
                    num(2.0)
                ))
            )
        );
    }

    #[test]
    fn errors_name_the_column() {
        let e = |s: &str| parse_expr(s, &["x"]).unwrap_err().to_string();
        assert_eq!(
            e("4 * x + y"),
            "objective:1:9: unknown name `y`; parameters: x; functions: exp, log, sqrt, abs, \
             sin, cos, tanh, sigmoid, relu, sum, mean"
        );
        assert_eq!(
            e("4 * (x + 1"),
            "objective:1:11: expected `)` to close the `(` at column 5, found the end"
        );
        assert_eq!(
            e("x +"),
            "objective:1:4: the expression ends where a number, a parameter or `(` belongs"
        );
        assert_eq!(e("x x"), "objective:1:3: expected an operator, found `x`");
        assert_eq!(e("x)"), "objective:1:2: unmatched `)`");
        assert_eq!(
            e("exp x"),
            "objective:1:5: `exp` is a function: write exp(...)"
        );
        assert_eq!(e("x % 2"), "objective:1:3: unexpected `%`; an objective holds numbers, parameters, + - * / ^ ** and parentheses");
        let deep = "(".repeat(10_000) + "x" + &")".repeat(10_000);
        assert!(e(&deep).contains("nested more than 200 deep"));
        let minus = "-".repeat(10_000) + "x";
        assert!(e(&minus).contains("nested more than 200 deep"));
    }
}
